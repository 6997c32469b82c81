"""Run comparison in the app: mark runs in the Train list, open the comparison, see both
loss curves overlaid, the settings that differ and the results side by side."""

from __future__ import annotations

import os
import shutil

import pytest
from textual.widgets import DataTable, Label
from textual_plot import PlotWidget

from carexpert.errors import UserError
from carexpert_tui.app import CarExpertApp
from carexpert_tui.screens.compare import CompareScreen, short_labels
from tests.tui.conftest import CONFIG_TEXT
from tests.tui.doubles import FIXTURE_RUNS, fake_services, wait_until

FINISHED, STOPPED = "run-20261125-101500-ab12", "run-20261125-143000-cd34"
T0 = 1_795_000_000


@pytest.fixture
def compare_project(tmp_path, monkeypatch):
    """The two fixture runs; the stopped one trained with another learning rate and LoRA rank."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "carexpert.toml").write_text(CONFIG_TEXT, encoding="utf-8")
    shutil.copytree(FIXTURE_RUNS, tmp_path / "runs")
    config = tmp_path / "runs" / STOPPED / "config.toml"
    config.write_text(config.read_text() + "\n[lora]\nr = 32\n\n[train]\nlearning_rate = 0.0005\n")
    for offset, run_id in enumerate([FINISHED, STOPPED]):
        os.utime(tmp_path / "runs" / run_id / "status.json", (T0 + offset, T0 + offset))
    return tmp_path


def table_rows(table: DataTable) -> dict[str, list[str]]:
    return {str(row[0]): [str(cell) for cell in row[1:]] for row in (table.get_row_at(i) for i in range(table.row_count))}


async def open_comparison(pilot) -> CompareScreen:
    app = pilot.app
    assert await wait_until(pilot, lambda: app.screen.selected is not None and len(app.runs) == 2)
    assert app.screen.check_action("compare_runs", ()) is False  # hidden until two runs are marked
    await pilot.press("m", "down", "m")
    assert await wait_until(pilot, lambda: app.screen.check_action("compare_runs", ()) is True)
    await pilot.press("v")
    assert await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.data is not None)
    await pilot.pause(0.2)
    return app.screen


def test_short_labels_keep_runs_apart():
    assert short_labels([FINISHED, STOPPED]) == ["ab12", "cd34"]
    assert short_labels(["run-1-x", "run-2-x"]) == ["1-x", "2-x"]


async def test_marked_runs_open_a_comparison_with_curves_diff_and_results(compare_project):
    app = CarExpertApp("carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await open_comparison(pilot)
        assert screen.run_ids == [STOPPED, FINISHED]  # the list's order, newest first
        plot = screen.query_one(PlotWidget)
        assert plot._labels == ["cd34", "ab12"]  # one curve per run
        diff = table_rows(screen.query_one("#config-diff", DataTable))
        assert diff["lora.r"][0] == "32" and diff["train.learning_rate"][0] == "5.00e-04"
        assert "model.base_model" not in diff  # only what differs
        results = table_rows(screen.query_one("#run-results", DataTable))
        assert results["steps"] == ["24", "60"]
        assert results["eval score"] == ["–", "0.975"]  # only the finished run was evaluated (its newest, tuned+rag)
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert app.screen.marked == {STOPPED, FINISHED}  # marks survive for another look


def test_compare_screen_snapshot(snap_compare, compare_project):
    """Two runs overlaid at 80x24, with the config diff and results tables below."""

    async def run_before(pilot):
        await open_comparison(pilot)
        await pilot.wait_for_scheduled_animations()

    app = CarExpertApp("carexpert.toml", services=fake_services(), mode="train")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_a_run_that_cannot_be_read_leaves_a_message_not_a_blank_screen(compare_project, monkeypatch):
    import carexpert.runs.compare

    def unreadable(runs_dir, run_ids):
        raise UserError("events.jsonl cannot be read (permission denied)", where=f"runs/{FINISHED}")

    monkeypatch.setattr(carexpert.runs.compare, "compare_runs", unreadable)
    app = CarExpertApp("carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = CompareScreen("runs", [STOPPED, FINISHED])
        await app.push_screen(screen)
        title = screen.query_one("#compare-title", Label)
        assert await wait_until(pilot, lambda: "Could not compare" in str(title.render()))
        assert FINISHED in str(title.render()) and screen.data is None
        assert any("failed" in str(n.message) for n in app._notifications)
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, CompareScreen))
