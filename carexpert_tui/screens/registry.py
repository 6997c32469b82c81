"""The app's modes, in one list: their screens, titles, and the keys that switch to them.

Each mode has two keys. Its number (1-5) works wherever a key is not typed into a text
field; alt+number works everywhere, a text field with focus included, because it is a
priority binding and no field types alt+digits (``carexpert_tui.terminal_keys`` makes
classic terminals deliver it). The footer shows alt+number, the key that always works.

Screens are imported when the mode is first opened: the Train screen's charts pull in
numpy and the Chat screen the Markdown stack; loading them on first use keeps them off
the path to the first frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from textual.binding import Binding


@dataclass(frozen=True)
class Mode:
    name: str
    module: str  # under carexpert_tui.screens
    screen: str  # the class name in it
    title: str
    tooltip: str


MODES = (
    Mode("system", "system", "SystemScreen", "System", "Environment checks, GPUs, RAM and CPU"),
    Mode("config", "config", "ConfigScreen", "Config", "Edit and save the configuration"),
    Mode("train", "train", "TrainScreen", "Train", "Start, stop and watch training runs"),
    Mode("eval", "evaluate", "EvalScreen", "Eval", "Browse a run's evaluation: base vs tuned"),
    Mode("chat", "chat", "ChatScreen", "Chat", "Chat with the base model or a run's adapter"),
)
MODE_SCREENS = {mode.name: (mode.module, mode.screen) for mode in MODES}


def screen_class(mode: str) -> type:
    module, name = MODE_SCREENS[mode]
    return getattr(import_module(f"carexpert_tui.screens.{module}"), name)


def screen_factory(mode: str) -> Callable[[], object]:
    """What ``App.MODES`` holds: a callable that imports and builds the mode's screen."""
    return lambda: screen_class(mode)()


def mode_bindings() -> list[Binding]:
    """Per mode, alt+number (everywhere, shown in the footer) and its number (outside text fields).

    The number keeps the id ``mode-<name>`` it always had, so keymaps in users' configs still apply.
    """
    bindings = []
    for number, mode in enumerate(MODES, 1):
        action = f"app.switch_mode('{mode.name}')"
        bindings.append(Binding(f"alt+{number}", action, mode.title, id=f"mode-{mode.name}-anywhere", priority=True,
                                tooltip=f"{mode.tooltip} (works while typing)"))
        bindings.append(Binding(str(number), action, mode.title, id=f"mode-{mode.name}", show=False,
                                tooltip=f"{mode.tooltip} (outside a text field)"))
    return bindings
