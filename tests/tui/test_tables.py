"""fill_table: columns sized from their cells at fill time, so no frame can cache a truncated cell."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from carexpert_tui.tables import cell_width, column_widths, fill_table


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield DataTable()


def test_cell_width_counts_terminal_cells_of_the_widest_line():
    assert cell_width("0.75 → 1.00") == 11
    assert cell_width(Text("✓ pass", style="bold")) == 6
    assert cell_width("short\na longer line") == 13
    assert cell_width(3) == 1
    assert cell_width("") == 0


def test_column_widths_take_the_label_or_the_widest_cell():
    assert column_widths(["category", "n"], [("maintenance", "1"), ("evs", "12")]) == [11, 2]
    assert column_widths(["a long label", "n"], []) == [12, 1]


async def test_widths_are_final_before_the_table_ever_idles():
    """The race behind a flaky snapshot: with auto widths a frame drawn before DataTable's idle cached
    'maintena' at the header's width. Here every column is as wide as its widest cell at once."""
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(DataTable)
        fill_table(table, ["category", ("score b→t", "score")],
                   [("maintenance", "0.50 → 1.00"), ("evs", Text("0.75 → 1.00", style="bold"))], keys=["m", "e"])
        assert [c.get_render_width(table) - 2 * table.cell_padding for c in table.ordered_columns] == [11, 11]
        assert table.get_row("m") == ["maintenance", "0.50 → 1.00"]
        assert next(iter(table.get_column("score"))) == "0.50 → 1.00"
        await pilot.pause()
        assert "maintenance" in "".join(s.text for s in table.render_line(1))


async def test_refilling_replaces_rows_and_columns_and_honours_a_pinned_width():
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(DataTable)
        fill_table(table, ["a", "b"], [("one", "two"), ("three", "four")])
        fill_table(table, [("", "status"), "name"], [("✓ pass", "torch")], widths={"status": 8})
        await pilot.pause()
        assert table.row_count == 1
        assert [str(c.label) for c in table.ordered_columns] == ["", "name"]
        assert [c.width for c in table.ordered_columns] == [8, 5]
