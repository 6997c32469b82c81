"""Eval mode: results from a run folder (version 1 and version 2), base vs tuned by category with a
chart of every side, filterable items with two sides' answers, and a new evaluation started in the
background with its progress shown."""

from __future__ import annotations

import shutil

from textual.widgets import DataTable, Select, Static

from carexpert_tui.app import CarExpertApp
from carexpert_tui.messages import EvalFinished, EvalProgressed
from carexpert_tui.widgets.side_chart import SideChart, bar
from tests.tui.doubles import FIXTURE_RUNS, fake_services, wait_until

RESULT_V1 = "run-20261125-101500-ab12/20261125-120000"
RESULT = "run-20261125-101500-ab12/20261125-130000"  # the newest: four sides, with retrieval


def rendered(widget) -> str:
    return str(widget.render())


async def test_four_sides_are_charted_and_the_items_compare_base_and_tuned_with_retrieval(project):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="eval")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert await wait_until(pilot, lambda: screen.results is not None)
        assert screen.query_one("#result-choice", Select).value == RESULT
        assert screen.sides == ("base_rag", "tuned_rag")
        await pilot.pause()
        overview = rendered(screen.query_one("#eval-overview", Static))
        assert "base+rag → tuned+rag: score 0.75 → 0.97" in overview
        assert "tuned+rag: hallucinated 0%" in overview and "guard 12%" in overview
        chart = screen.query_one(SideChart)
        lines = rendered(chart).splitlines()
        assert lines[0].split()[:5] == ["score", "■", "base", "■", "base+rag"]
        assert [line.split()[0] for line in lines[1:]] == [
            "specs", "engines", "evs", "maintenance", "safety", "buying", "overall"]
        overall = lines[-1]
        assert "0.44" in overall and "0.75" in overall and "0.94" in overall and "0.97" in overall
        assert chart.region.right <= 80 and chart.region.height == len(lines)  # it fits 80 columns, all rows shown
        assert screen.query_one("#summary-split").has_class("-stacked")  # at 80 columns, above the table
        await pilot.press("m")
        assert rendered(chart).startswith("correct")
        await pilot.press("i")
        await pilot.press("down", "down", "down", "down")  # the Zephyr: the guard answered it with retrieval
        await pilot.pause()
        assert "Zephyr" in rendered(screen.query_one("#item-question", Static))
        assert screen.query_one("#answer-tuned", Static).border_title.startswith("tuned+rag · guard correct")
        assert "I have no record" in rendered(screen.query_one("#answer-tuned", Static))
        assert "retrieved: tesla-model-3-2024-rwd" in rendered(screen.query_one("#item-expected", Static))


def test_bars_are_drawn_in_eighths():
    assert bar(1.0, 4) == "████" and bar(0.0, 4) == "    " and bar(None, 3) == "   "
    assert bar(0.5, 3) == "█▌ "  # 12 of 24 eighths
    assert bar(0.97, 10) == "█████████▊"  # 77.6 → 78 eighths: 9 cells and 6/8


async def test_open_results_and_filter_items(project):
    """A version 1 result (base and tuned, closed-book) opens and filters as before."""
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="eval")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert await wait_until(pilot, lambda: screen.results is not None)
        screen.query_one("#result-choice", Select).value = RESULT_V1
        assert await wait_until(pilot, lambda: screen.results.name == "20261125-120000")
        assert screen.sides == ("base_closed", "tuned_closed")
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
