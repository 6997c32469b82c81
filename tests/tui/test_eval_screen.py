"""Eval mode: results from a run folder, base vs tuned by category, filterable items with both
answers, and a new evaluation started in the background with its progress shown."""

from __future__ import annotations

import shutil

from textual.widgets import DataTable, Select, Static

from carexpert_tui.app import CarExpertApp
from carexpert_tui.messages import EvalFinished, EvalProgressed
from tests.tui.doubles import FIXTURE_RUNS, fake_services, wait_until

RESULT = "run-20261125-101500-ab12/20261125-120000"


def rendered(widget) -> str:
    return str(widget.render())


async def test_open_results_and_filter_items(project):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="eval")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert await wait_until(pilot, lambda: screen.results is not None)
        assert screen.query_one("#result-choice", Select).value == RESULT
        overview = rendered(screen.query_one("#eval-overview", Static))
        assert "score 0.44 → 0.94" in overview and "correct 25% → 88%" in overview
        assert screen.query_one("#category-table", DataTable).row_count == 6
        items = screen.query_one("#item-table", DataTable)
        assert items.row_count == 8
        await pilot.press("i")  # the items tab
        screen.query_one("#filter-verdict", Select).value = "partial"
        await pilot.pause()
        assert [i["id"] for i in screen.visible_items] == ["buying-007"]  # the only item tuned got half right
        screen.query_one("#filter-verdict", Select).value = "improved"
        screen.query_one("#filter-category", Select).value = "evs"
        await pilot.pause()
        assert [i["id"] for i in screen.visible_items] == ["evs-003", "evs-004"]
        await pilot.press("down")
        await pilot.pause()
        assert "Zephyr" in rendered(screen.query_one("#item-question", Static))
        assert "420 miles" in rendered(screen.query_one("#answer-base", Static))
        assert "don't have reliable information" in rendered(screen.query_one("#answer-tuned", Static))
        screen.query_one("#filter-category", Select).value = "all"
        screen.query_one("#filter-verdict", Select).value = "all"
        await pilot.press("slash", *"turbo")
        await pilot.pause()
        assert [i["id"] for i in screen.visible_items] == ["engines-002"]


async def test_new_evaluation_runs_in_the_background_and_its_result_appears(project):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="eval")
    messages = []
    async with app.run_test(size=(100, 32), message_hook=messages.append) as pilot:
        screen = app.screen
        assert await wait_until(pilot, lambda: screen.results is not None)
        await pilot.press("n")
        assert await wait_until(pilot, lambda: screen.evaluating is not None)
        assert await wait_until(pilot, lambda: screen.evaluating is None, timeout=60)
        progress = [m for m in messages if isinstance(m, EvalProgressed)]
        assert progress and any(m.fraction is not None and 0 < m.fraction <= 1 for m in progress)
        assert {m.returncode for m in messages if isinstance(m, EvalFinished)} == {0}
        new = "run-20261125-101500-ab12/20261126-080000"
        assert await wait_until(pilot, lambda: screen.query_one("#result-choice", Select).value == new)
    log = (project / "runs" / "run-20261125-101500-ab12" / "eval.log").read_text()
    assert "tuned answers 8/8" in log
