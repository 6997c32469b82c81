"""The chat's input line, with the questions already asked one up/down away (like a shell).

While an answer is being written, escape here stops it (and the footer says so); otherwise
escape falls through to the screen, which takes focus out of the field.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class PromptInput(Input):
    """An Input that recalls earlier submissions with up and down."""

    BINDINGS = [
        Binding("up", "history(-1)", "Earlier question", id="history-back", show=False),
        Binding("down", "history(1)", "Later question", id="history-forward", show=False),
        Binding("escape", "stop_answer", "Stop", id="stop-answer", tooltip="Stop the answer being written"),
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history: list[str] = []
        self._position = 0
        self._draft = ""

    def remember(self, text: str) -> None:
        if text and (not self.history or self.history[-1] != text):
            self.history.append(text)
        self._position = len(self.history)
        self._draft = ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_answer":
            return bool(getattr(self.screen, "answering", False))
        return super().check_action(action, parameters)

    def action_stop_answer(self) -> None:
        self.screen.action_stop_answer()

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._position == len(self.history):
            self._draft = self.value
        self._position = max(0, min(len(self.history), self._position + step))
        self.value = self.history[self._position] if self._position < len(self.history) else self._draft
        self.cursor_position = len(self.value)
