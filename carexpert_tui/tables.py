"""Filling a DataTable with columns as wide as their widest cell, decided before anything is drawn.

Why not DataTable's auto-width columns: it measures new rows on its next idle, and a frame drawn
before that caches each cell at the header's width (the cell cache key has no width in Textual
8.2), so a table filled at the wrong moment stayed truncated ("maintena", "0.75 → 1.") until its
next update. Widths fixed here from the cells themselves leave nothing to measure later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

Column = str | tuple[str, str]  # a label, or (label, key)


def cell_width(value: Any) -> int:
    """Terminal cells the widest line of a value takes, as a one-line DataTable cell shows it."""
    text = value.plain if isinstance(value, Text) else str(value)
    return max((cell_len(line) for line in text.splitlines()), default=0)


def column_widths(labels: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """Each column's width: its label or its widest cell, whichever is wider."""
    widths = [cell_width(label) for label in labels]
    for row in rows:
        for index, value in enumerate(row[:len(widths)]):
            widths[index] = max(widths[index], cell_width(value))
    return widths


def fill_table(table: DataTable, columns: Sequence[Column], rows: Sequence[Sequence[Any]], *,
               keys: Sequence[str] | None = None, widths: dict[str, int] | None = None) -> None:
    """Replace a table's columns and rows; ``widths`` pins a column (by key or label) instead of measuring it."""
    labels = [c if isinstance(c, str) else c[0] for c in columns]
    column_keys = [c if isinstance(c, str) else c[1] for c in columns]
    measured = column_widths(labels, rows)
    pinned = widths or {}
    table.clear(columns=True)
    for label, key, width in zip(labels, column_keys, measured):
        table.add_column(label, key=key, width=pinned.get(key, width))
    for index, row in enumerate(rows):
        table.add_row(*row, key=keys[index] if keys is not None else None)
