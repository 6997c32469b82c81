"""The runs folder as a list: every run with its live state, newest first.

A stalled run says so in the warning colour; runs marked for comparison carry a mark.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from carexpert_tui.run_rows import RunRow

# Mark and theme colour per state (None: dimmed text).
STATE_MARKS = {"running": ("●", "success"), "pending": ("◌", "accent"), "stopping": ("◍", "warning"),
               "stopped": ("■", None), "finished": ("✓", "success"), "failed": ("✗", "error"),
               "dead": ("✗", "error"), "unknown": ("?", None)}


class RunList(OptionList):
    """Options keyed by run id; keeps the highlight on the same run as the list refreshes."""

    DEFAULT_CSS = """
    RunList { height: 1fr; border: none; padding: 0; }
    """

    def show_rows(self, rows: tuple[RunRow, ...], marked: frozenset[str] = frozenset()) -> None:
        keep = self.highlighted_option.id if self.highlighted_option is not None else None
        variables = self.app.theme_variables
        options = []
        for row in rows:
            mark, color = STATE_MARKS.get(row.state, ("?", None))
            label = Text("+ " if row.run_id in marked else "", style=variables["accent"])
            label.append(row.run_id, style="bold")
            label.no_wrap, label.overflow = True, "ellipsis"
            label.append("\n")
            label.append(f"{mark} {row.state}", style=variables[color] if color else "dim")
            if row.stalled:
                label.append("  ⚠ stalled", style=f"bold {variables['warning']}")
            elif row.locked and not row.live:
                label.append("  locked", style=variables["warning"])
            label.append(f"  {row.progress_text()}", style="dim")
            options.append(Option(label, id=row.run_id))
        with self.prevent(OptionList.OptionHighlighted):
            self.set_options(options)
            if keep is not None and any(row.run_id == keep for row in rows):
                self.highlighted = self.get_option_index(keep)
        if keep is None and rows:
            self.highlighted = 0

    def select_run(self, run_id: str) -> bool:
        try:
            self.highlighted = self.get_option_index(run_id)
        except OptionDoesNotExist:
            return False
        return True
