"""One evaluation item: the question, what was expected, and both answers side by side."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

GOOD = ("correct",)
BAD = ("wrong", "refused", "empty")


def verdict_style(verdict: str | None, variables: dict[str, str]) -> str:
    if verdict in GOOD:
        return f"bold {variables['verdict-good']}"
    if verdict in BAD:
        return f"bold {variables['verdict-bad']}"
    if verdict == "partial":
        return f"bold {variables['warning']}"
    return "dim"


def verdict_text(side: dict[str, Any] | None, variables: dict[str, str]) -> Text:
    """"correct 1.00" in the verdict's colour; "–" when that side was not evaluated."""
    if not side:
        return Text("–", style="dim")
    verdict = side.get("verdict") or "?"
    score = side.get("score")
    return Text(verdict + (f" {score:.2f}" if isinstance(score, (int, float)) else ""),
                style=verdict_style(verdict, variables))


class AnswerCompare(VerticalScroll, can_focus=True):
    """Question and expectation on top, base | tuned answers below (model text shown as plain text)."""

    DEFAULT_CSS = """
    AnswerCompare {
        height: 1fr;
        padding: 0 1;
        &:focus { background-tint: $primary 5%; }
        & > #item-question { text-style: bold; }
        & > #item-expected { color: $text-muted; margin-bottom: 1; }
        & > Horizontal { height: auto; }
        & .answer { width: 1fr; height: auto; border: round $panel-lighten-2; padding: 0 1; }
    }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.sanitize = str

    def compose(self) -> ComposeResult:
        yield Static("Pick an item to compare its answers.", id="item-question")
        yield Static("", id="item-expected")
        with Horizontal():
            yield Static("", id="answer-base", classes="answer")
            yield Static("", id="answer-tuned", classes="answer")

    def show_item(self, item: dict[str, Any] | None) -> None:
        clean = self.sanitize
        base, tuned = self.query_one("#answer-base", Static), self.query_one("#answer-tuned", Static)
        if item is None:
            self.query_one("#item-question", Static).update("No item matches the filters.")
            self.query_one("#item-expected", Static).update("")
            base.update("")
            tuned.update("")
            return
        variables = self.app.theme_variables
        self.query_one("#item-question", Static).update(Text(f"{item.get('id', '')}  {clean(item.get('question', ''))}"))
        expected = Text()
        if item.get("reference"):
            expected.append("reference: ", style="italic")
            expected.append(clean(str(item["reference"])) + "\n")
        if item.get("expected"):
            expected.append("expected: ", style="italic")
            expected.append(clean(str(item["expected"])))
        self.query_one("#item-expected", Static).update(expected)
        for widget, side, answer in ((base, "base", item.get("base_answer")), (tuned, "tuned", item.get("tuned_answer"))):
            widget.border_title = f"{side} · " + verdict_text(item.get(side), variables).plain
            widget.update(Text(clean(answer)) if answer is not None else Text("not evaluated", style="dim"))
        self.scroll_home(animate=False)
