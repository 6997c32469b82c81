"""The Chat screen's sampling panel: temperature, top-p and the rest, changeable between answers.

Each setting is a ``ConfigField`` built from the schema, so a value is checked (and
refused) with the same words as in the config file. Only valid values are kept in
``values`` (``Changed`` says one came); the screen hands them to the session for its next
answer. The panel starts from the config's ``[chat]`` section and is shown beside the
conversation when the terminal is wide enough (ctrl+t shows or hides it).
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message

from carexpert.config import field_spec
from carexpert_tui.widgets.config_field import ConfigField

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")
"""``carexpert.chat.SAMPLING_KEYS``, as the panel's fields: importing that package here would pull the
knowledge store and retrieval into the screen's import (about 170 ms on the UI thread)."""

SHOWN_FROM_WIDTH = 110
"""The narrowest terminal (columns) that shows the panel from the start."""


class SamplingPanel(VerticalScroll):
    """The sampling settings; ``values`` holds the last valid value of each."""

    class Changed(Message):
        """A setting took a valid new value (now in ``values``)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.values: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        for key in SAMPLING_KEYS:
            spec = field_spec(f"chat.{key}")
            yield ConfigField(spec, spec.default)

    def on_mount(self) -> None:
        self.border_title = "Sampling"
        self.display = self.app.size.width >= SHOWN_FROM_WIDTH

    def show_config(self, chat: Any) -> None:
        """Start from the config's ``[chat]`` values."""
        for key in SAMPLING_KEYS:
            self.values[key] = getattr(chat, key)
            self.query_one(f"#field-chat-{key}", ConfigField).show_value(getattr(chat, key))

    def apply_to(self, sampling: Any) -> None:
        """Set the kept values on a session's sampling settings (used from its next answer)."""
        for key, value in self.values.items():
            setattr(sampling, key, value)

    def toggle(self) -> None:
        """Show or hide the panel; shown, its first field takes the focus."""
        self.display = not self.display
        if self.display:
            self.query(ConfigField).first().input.focus()

    @on(ConfigField.Edited)
    def keep_valid_value(self, event: ConfigField.Edited) -> None:
        if event.problem is None:
            self.values[event.field.spec.name] = event.value
            self.post_message(self.Changed())
