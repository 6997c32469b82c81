"""Which screen each mode shows, imported when the mode is first opened.

The Train screen's charts pull in numpy and the Chat screen the Markdown stack; loading
them on first use keeps them off the path to the first frame.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

MODE_SCREENS = {
    "system": ("system", "SystemScreen"),
    "config": ("config", "ConfigScreen"),
    "train": ("train", "TrainScreen"),
    "eval": ("evaluate", "EvalScreen"),
    "chat": ("chat", "ChatScreen"),
}


def screen_class(mode: str) -> type:
    module, name = MODE_SCREENS[mode]
    return getattr(import_module(f"carexpert_tui.screens.{module}"), name)


def screen_factory(mode: str) -> Callable[[], object]:
    """What ``App.MODES`` holds: a callable that imports and builds the mode's screen."""
    return lambda: screen_class(mode)()
