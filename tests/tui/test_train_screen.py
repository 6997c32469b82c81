"""Train mode: start a run (a fake trainer child that replays canned events), watch the charts
fill, stop it; runs started elsewhere are found and followed from their files."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from textual.widgets import Label, Log

from carexpert.config import config_to_toml
from carexpert.errors import UserError
from carexpert.runs import read_status
from carexpert_tui.app import CarExpertApp
from carexpert_tui.screens.confirm import ConfirmScreen
from carexpert_tui.widgets.metric_chart import MetricChart
from carexpert_tui.widgets.run_list import RunList
from carexpert_tui.widgets.vram_panel import DeviceMemory, VramPanel
from tests.training_support import tiny_config, write_tiny_dataset
from tests.tui.doubles import (
    FAKE_FOUR_GPUS,
    FIXTURE_RUNS,
    fake_estimate,
    fake_services,
    time_report,
    wait_until,
    write_four_gpu_run,
)


def label_text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Label).render())


def chart_points(app, chart_id: str, name: str) -> int:
    return len(app.screen.query_one(f"#{chart_id}", MetricChart).series[name])


async def test_start_watch_and_stop_a_run(project):
    services = fake_services()
    services.env["FAKE_STEP_DELAY"] = "0.15"
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("s")
        assert await wait_until(pilot, lambda: app.screen.selected is not None, timeout=30)
        run_id = app.screen.selected
        assert app.current_run == run_id
        assert await wait_until(pilot, lambda: chart_points(app, "loss-chart", "train") >= 16, timeout=30)
        assert await wait_until(pilot, lambda: chart_points(app, "loss-chart", "val") >= 1, timeout=30)
        assert chart_points(app, "lr-chart", "lr") >= 16
        assert "tok/s" in str(app.screen.query_one("#run-stats", Label).render())
        assert app.screen.query(DeviceMemory)  # the VRAM panel has a card for GPU 0
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        status_file = project / "runs" / run_id / "status.json"
        assert await wait_until(pilot, lambda: read_status(status_file).state == "stopped", timeout=30)
        assert await wait_until(pilot, lambda: app.runs and app.runs[0].state == "stopped", timeout=5)
        assert read_status(status_file).step < 60  # stopped mid-way, not finished
        log = app.screen.query_one("#run-log", Log)
        assert await wait_until(pilot, lambda: any("stopped on request" in line for line in log.lines), timeout=5)


async def test_a_run_on_four_gpus_shows_one_row_per_gpu(project):
    write_four_gpu_run(project / "runs")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(gpus=FAKE_FOUR_GPUS), mode="train")
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.screen.query_one(VramPanel)
        assert await wait_until(pilot, lambda: len(panel.cards) == 4 and chart_points(app, "loss-chart", "train") == 12)
        app.screen.query_one("#train-tabs").active = "tab-vram"
        await pilot.pause()
        assert list(panel.cards) == ["gpu0", "gpu1", "gpu2", "gpu3"] and panel.has_class("-several")
        rows = [str(card.query_one(".figures", Label).render()) for card in panel.query(DeviceMemory)]
        # the last step: allocated 20 + 2r + 1.2 GiB, reserved 24 + 2r, peak 26 + 2r + 1.2; NVML's total per card
        assert rows[3].split() == ["27.2G", "30.0G", "33.2G", "/", "141.0G"]
        assert all(card.region.height == 1 for card in panel.query(DeviceMemory))  # one line each: all four fit
        assert all(card.region.y < panel.region.bottom for card in panel.query(DeviceMemory))
        assert "rank 3" in str(panel.cards["gpu3"].tooltip)


async def test_the_panel_keeps_ranks_on_other_hosts_apart(project):
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        panel = app.screen.query_one(VramPanel)
        gib = 1024**3
        event = {"gpus": [{"rank": r, "index": r % 2, "allocated": gib, "reserved": 2 * gib, "peak": 3 * gib}
                          for r in range(4)]}  # two hosts with two GPUs each
        panel.update_from_step(event, FAKE_FOUR_GPUS)
        await pilot.pause()
        assert list(panel.cards) == ["gpu0", "gpu1", "rank2", "rank3"]
        figures = str(panel.cards["rank3"].query_one(".figures", Label).render())
        assert figures.split()[-1] == "?"  # NVML sees only this host's cards


async def test_runs_started_before_the_app_are_listed_and_followed(project):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        run_list = app.screen.query_one(RunList)
        assert await wait_until(pilot, lambda: run_list.option_count == 2)
        assert await wait_until(pilot, lambda: chart_points(app, "loss-chart", "train") > 0)
        first = app.screen.selected
        await pilot.press("down")
        assert await wait_until(pilot, lambda: app.screen.selected not in (None, first))
        other = app.screen.selected
        expected = 60 if other.endswith("ab12") else 24
        assert await wait_until(pilot, lambda: chart_points(app, "loss-chart", "train") == expected)
        # a stopped run can be resumed, not stopped
        assert app.screen.check_action("resume_training", ()) is (True if expected == 24 else None)
        assert app.screen.check_action("stop_training", ()) is None


@pytest.mark.slow
async def test_a_real_tiny_run_started_from_the_app_fills_the_chart(project, tiny_model_dir):
    """The real `carexpert train --detach` on the tiny model (CPU, 6 steps): the app follows it to the end."""
    dataset = write_tiny_dataset(project / "data.jsonl")
    config = tiny_config(tiny_model_dir, dataset)
    config.train.runs_dir = str(project / "runs")
    (project / "carexpert.toml").write_text(config_to_toml(config))
    services = fake_services(cli=(sys.executable, "-m", "carexpert.cli.main"))
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("s")
        assert await wait_until(pilot, lambda: app.screen.selected is not None, timeout=30)
        run_id = app.screen.selected
        assert await wait_until(pilot, lambda: app.runs and app.runs[0].state == "finished", timeout=90)
        assert await wait_until(pilot, lambda: chart_points(app, "loss-chart", "train") == 6)
        assert chart_points(app, "loss-chart", "val") >= 1
        assert chart_points(app, "lr-chart", "lr") == 6
    assert (project / "runs" / run_id / "adapter" / "adapter_config.json").is_file()


async def test_start_shows_the_time_and_asks_before_a_long_run(project):
    long_run = time_report("213 steps x 16 sequences, 492.8 k tokens: about 21 h 22 min on 2 CPU threads (test CPU) "
                           "(measured 7 tokens/s training)", long=True)
    estimate = fake_estimate(long_run)
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(estimate=estimate), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("s")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "about 21 h 22 min" in app.screen.question and "quick profile" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        train = app.screen
        assert "213 steps" in label_text(app, "#train-time") and "⚠" in label_text(app, "#train-time")
        assert train.query_one("#train-time").has_class("-long")
        await pilot.pause(0.5)
        assert not any((project / "runs").iterdir())  # declined: nothing started
        assert estimate.calls == [False]


async def test_quick_run_shows_its_changes_then_starts_with_quick(project):
    quick = time_report("54 steps x 4 sequences, 31.2 k tokens: about 13 min on 2 CPU threads (test CPU) "
                        "(measured 50 tokens/s training)",
                        changes=["model.quantization: 'nf4' → 'none'", "train.max_steps: 0 → 54"])
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(estimate=fake_estimate(quick=quick)),
                       mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("q")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "about 13 min" in app.screen.question and "train.max_steps: 0 → 54" in app.screen.question
        await pilot.press("y")
        assert await wait_until(pilot, lambda: app.screen.selected is not None, timeout=30)
        run_id = app.screen.selected
        assert "quick run: 54 steps" in label_text(app, "#train-time")
    assert json.loads((project / "runs" / run_id / "fake_start.json").read_text()) == {"quick": True, "yes": True}


async def test_a_short_run_starts_at_once_and_e_only_measures(project):
    estimate = fake_estimate()
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(estimate=estimate), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("e")
        assert await wait_until(pilot, lambda: "about 4 min" in label_text(app, "#train-time"))
        await pilot.pause(0.3)
        assert not any((project / "runs").iterdir())
        await pilot.press("s")
        assert await wait_until(pilot, lambda: app.screen.selected is not None, timeout=30)
        assert estimate.calls == [False, False]
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")


def failing_estimate():
    """An ``estimate_time`` service that cannot time the run, as when the probe's child fails."""
    calls: list[bool] = []

    async def estimate(services, config_path, is_quick: bool):
        calls.append(is_quick)
        raise UserError("carexpert estimate could not time the run", details=["probe: out of memory"])

    estimate.calls = calls
    return estimate


async def test_a_start_whose_time_cannot_be_measured_asks_then_starts(project):
    estimate = failing_estimate()
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(estimate=estimate), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("s")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "could not be measured" in app.screen.question and "out of memory" in app.screen.question
        await pilot.press("y")
        assert await wait_until(pilot, lambda: app.screen.selected is not None, timeout=30)
        assert label_text(app, "#train-time") == "time: not measured"
        # s, q and e work again once the start is through (the runs scan may list the run sooner)
        assert await wait_until(pilot, lambda: app.screen.check_action("start_training", ()) is True)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")


async def test_e_or_q_without_a_measured_time_reports_it_and_starts_nothing(project):
    estimate = failing_estimate()
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(estimate=estimate), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        for key in ("e", "q"):
            await pilot.press(key)
            assert await wait_until(pilot, lambda: label_text(app, "#train-time") == "time: not measured (see the message)")
            assert app.screen.check_action("quick_run", ()) is True  # the keys work again
            app.screen.query_one("#train-time", Label).update("")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert not any((project / "runs").iterdir())
        assert estimate.calls == [False, True]
