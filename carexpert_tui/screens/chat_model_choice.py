"""Which model the Chat screen talks to (and serves): the base model or a run's adapter.

The choices follow the app's runs list (every run that has an adapter) and are rebuilt
only when they change, as the list is re-read often while a run logs. A choice whose run
is gone falls back to the base model without a ``Changed`` message (the user did not pick it).
"""

from __future__ import annotations

from textual.widgets import Select

from carexpert_tui.run_rows import RunRow

BASE = "base"
BASE_OPTION = ("base model", BASE)


class ModelChoice(Select[str]):
    """The base model, or the adapter of a run; ``run_id`` is the choice as the services take it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__([BASE_OPTION], value=BASE, allow_blank=False, id=id, compact=True)
        self.shown_options: list[tuple[str, str]] = []
        """The choices last put in the selector."""

    @property
    def run_id(self) -> str | None:
        """The chosen run, or None for the base model."""
        return None if self.value == BASE else str(self.value)

    def show_runs(self, rows: tuple[RunRow, ...]) -> None:
        options = [BASE_OPTION] + [(f"adapter of {row.run_id}", row.run_id) for row in rows if row.has_adapter]
        if options != self.shown_options:
            self.shown_options = options
            current = self.value
            with self.prevent(Select.Changed):
                self.set_options(options)
                self.value = current if any(value == current for _, value in options) else BASE
