"""A bar chart of one metric per category, one bar per evaluated side (base / tuned, closed-book /
with retrieval), so the four columns of an evaluation read at a glance.

Rows are categories (then "overall"); each side has a column of bars in its own colour (the
theme's ``side-*`` variables), with the value after the bar. Bars are drawn with eighth-block
characters, so a bar ten cells wide still shows steps of 1.25%. The widget sizes its bars to its
width and needs one line per category plus two (legend, overall).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from carexpert.evaluation.sides import SIDES

SIDE_VARIABLES = {"base_closed": "side-base-closed", "base_rag": "side-base-rag",
                  "tuned_closed": "side-tuned-closed", "tuned_rag": "side-tuned-rag"}
EIGHTHS = " ▏▎▍▌▋▊▉"
VALUE_WIDTH = 5  # " 0.52"


def bar(value: float | None, width: int) -> str:
    """A horizontal bar for ``value`` in [0, 1], ``width`` cells, eighth-cell steps (blank when None)."""
    if value is None:
        return " " * width
    eighths = round(max(0.0, min(1.0, value)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part else "")
    return text.ljust(width)


class SideChart(Widget):
    """Per-category bars of one metric (``metric``: a key of a summary side, e.g. "score") for every side."""

    DEFAULT_CSS = """
    SideChart {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.summary: dict[str, Any] | None = None
        self.metric = "score"
        self.metric_label = "score"

    def show(self, summary: dict[str, Any] | None, metric: str = "score", label: str = "score") -> None:
        self.summary, self.metric, self.metric_label = summary, metric, label
        self.refresh(layout=True)

    def rows(self) -> list[tuple[str, dict[str, Any]]]:
        summary = self.summary or {}
        rows = [(category, block) for category, block in (summary.get("categories") or {}).items()]
        return rows + [("overall", summary.get("overall") or {})]

    def sides(self) -> list[str]:
        return [side for side in (self.summary or {}).get("sides") or [] if side in SIDES]

    def get_content_height(self, container, viewport, width: int) -> int:
        return 1 + len(self.rows()) if self.summary else 1

    def render(self) -> Text:
        if not self.summary:
            return Text("No evaluation to chart.", style="dim")
        sides = self.sides()
        variables = self.app.theme_variables
        label_width = min(14, max(len(name) for name, _ in self.rows()) + 1)
        width = max(20, self.size.width - 2)
        column = max(VALUE_WIDTH + 3, (width - label_width) // max(1, len(sides)))
        bar_width = column - VALUE_WIDTH - 1
        text = Text()
        text.append(f"{self.metric_label:<{label_width}}"[:label_width], style="bold")
        for side in sides:
            text.append(f"■ {SIDES[side].short}".ljust(column)[:column], style=variables[SIDE_VARIABLES[side]])
        for name, block in self.rows():
            text.append("\n")
            text.append(f"{name:<{label_width}}"[:label_width], style="bold" if name == "overall" else "")
            for side in sides:
                value = (block.get(side) or {}).get(self.metric)
                text.append(bar(value, bar_width), style=variables[SIDE_VARIABLES[side]])
                text.append(("  –  " if value is None else f" {value:.2f}").ljust(VALUE_WIDTH + 1), style="dim")
        return text
