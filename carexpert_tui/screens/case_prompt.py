"""Turn a chat exchange into an eval case: the question, a reference answer and a category."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea


class CasePrompt(ModalScreen[dict | None]):
    """Dismisses with {"question", "reference", "category"} (ctrl+s / Save) or None (escape)."""

    DEFAULT_CSS = """
    CasePrompt {
        align: center middle;
        & > Vertical {
            width: 90; max-width: 100%; height: auto; max-height: 95%;
            border: thick $primary; background: $surface; padding: 0 1;
        }
        Label { color: $text-muted; margin-top: 1; }
        #case-reference { height: 8; }
        Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
        Button { margin-left: 2; }
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel-case"),
                Binding("ctrl+s", "save", "Save case", id="save-case")]

    def __init__(self, question: str, answer: str):
        super().__init__()
        self.question = question
        self.answer = answer

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Question (asked of both models in every evaluation)")
            yield Input(self.question, id="case-question")
            yield Label("Reference answer — numbers in it are checked (edit the model's answer into the right one)")
            yield TextArea(self.answer, id="case-reference", soft_wrap=True)
            yield Label("Category")
            yield Input("user", id="case-category")
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Save case (ctrl+s)", id="save", variant="primary")

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        question = self.query_one("#case-question", Input).value.strip()
        if not question:
            self.notify("The question is empty.", severity="error")
            return
        self.dismiss({"question": question, "reference": self.query_one("#case-reference", TextArea).text.strip(),
                      "category": self.query_one("#case-category", Input).value.strip() or "user"})

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
