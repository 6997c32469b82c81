"""One evaluation item: the question, what was expected, and two sides' answers side by side
(with, for a retrieval side, the passages it was given and those its answer used)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from carexpert.evaluation.sides import SIDES

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
    if side.get("guard"):
        verdict = f"guard {verdict}"
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

    def show_item(self, item: dict[str, Any] | None,
                  sides: tuple[str | None, str | None] = ("base_closed", "tuned_closed")) -> None:
        clean = self.sanitize
        base, tuned = self.query_one("#answer-base", Static), self.query_one("#answer-tuned", Static)
        if item is None:
            self.query_one("#item-question", Static).update("No item matches the filters.")
            self.query_one("#item-expected", Static).update("")
            base.update("")
            tuned.update("")
            return
        variables = self.app.theme_variables
        question = Text(f"{item.get('id', '')}  {clean(item.get('question', ''))}")
        self.query_one("#item-question", Static).update(question)
        expected = Text()
        if item.get("reference"):
            expected.append("reference: ", style="italic")
            expected.append(clean(str(item["reference"])) + "\n")
        if item.get("expected"):
            shown = item["expected"]
            if isinstance(shown, dict):  # what the store says is long; the hallucinated figures line covers it
                shown = {k: v for k, v in shown.items() if k != "store"}
            expected.append("expected: ", style="italic")
            expected.append(clean(str(shown)))
        if item.get("retrieved"):
            used = set((item.get(sides[1] or "") or {}).get("used") or ())
            expected.append("\nretrieved: ", style="italic")
            expected.append(clean(", ".join(f"{h.get('id')}{' (used)' if h.get('id') in used else ''}"
                                            for h in item["retrieved"])))
        hallucinated = (item.get(sides[1] or "") or {}).get("hallucinated")
        if hallucinated:
            expected.append("\nhallucinated: ", style="italic")
            expected.append(clean(", ".join(f"{f.get('text')} ({f.get('why')})" for f in hallucinated)))
        self.query_one("#item-expected", Static).update(expected)
        for widget, side in ((base, sides[0]), (tuned, sides[1])):
            answer = item.get(f"{side}_answer") if side else None
            name = SIDES[side].short if side else "base"
            widget.border_title = f"{name} · " + verdict_text(item.get(side) if side else None, variables).plain
            widget.update(Text(clean(answer)) if answer is not None else Text("not evaluated", style="dim"))
        self.scroll_home(animate=False)
