"""Pictures of every screen at 80x24 (the SSH minimum) and 120x40, from fixed data.

Inputs are deterministic: two fixture runs (one finished with an evaluation, one stopped at
step 24), two fake H100s (four H200s and a four-GPU run for the per-GPU views), scripted checks, a scripted chat answer, frozen cursors. Update the
baselines with ``pytest tests/tui/test_snapshots.py --snapshot-update`` only after looking at
``snapshot_report.html``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from carexpert_tui.app import CarExpertApp
from carexpert_tui.widgets.metric_chart import MetricChart
from tests.tui.conftest import CONFIG_TEXT
from tests.tui.doubles import FAKE_FOUR_GPUS, FIXTURE_RUNS, fake_services, wait_until, write_four_gpu_run

SIZES = [(80, 24), (120, 40)]
T0 = 1_795_000_000


@pytest.fixture
def snapshot_project(tmp_path, monkeypatch):
    """The fixture runs in a fresh folder (the cwd), newest = the stopped run, with a commented config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "carexpert.toml").write_text(CONFIG_TEXT, encoding="utf-8")
    shutil.copytree(FIXTURE_RUNS, tmp_path / "runs")
    for offset, run_id in enumerate(["run-20261125-101500-ab12", "run-20261125-143000-cd34"]):
        os.utime(tmp_path / "runs" / run_id / "status.json", (T0 + offset, T0 + offset))
    return tmp_path


def make_app(mode: str) -> CarExpertApp:
    return CarExpertApp("carexpert.toml", services=fake_services(), mode=mode)


async def settle(pilot) -> None:
    """Let polls, workers and the chart clock run, then stop caring about time."""
    await pilot.pause(0.6)
    await pilot.wait_for_scheduled_animations()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_system_screen(snap_compare, snapshot_project, size):
    """Checks table (2 pass, 1 warn, 1 fail with its fix under the table) and one card per fake H100."""

    async def run_before(pilot):
        screen = pilot.app.screen
        assert await wait_until(pilot, lambda: screen.query("GpuCard") and screen.query_one("#checks").row_count == 4)
        await settle(pilot)

    assert snap_compare(make_app("system"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_config_screen(snap_compare, snapshot_project, size):
    """The [train] tab with batch_size set to 0: the field in red with the schema's message, the
    problem count in the status line, the focused field's doc and the derived figures beside it."""

    async def run_before(pilot):
        screen = pilot.app.screen
        screen.query_one("#config-tabs").active = "tab-train"
        assert await wait_until(pilot, lambda: screen.query("#field-train-batch_size"))
        field = screen.query_one("#field-train-batch_size")
        field.input.focus()
        field.input.value = "0"
        assert await wait_until(pilot, lambda: "VRAM" in str(screen.query_one("#derived").render()))
        await settle(pilot)

    assert snap_compare(make_app("config"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_train_screen(snap_compare, snapshot_project, size):
    """Both runs listed (stopped one selected), progress 24/60, loss chart with train and val lines,
    the learning-rate tab below."""

    async def run_before(pilot):
        chart = pilot.app.screen.query_one("#loss-chart", MetricChart)
        assert await wait_until(pilot, lambda: len(chart.series["train"]) == 24)
        await settle(pilot)

    assert snap_compare(make_app("train"), terminal_size=size, run_before=run_before)


def test_train_screen_four_gpus(snap_compare, snapshot_project):
    """A finished run on four GPUs, its VRAM tab at 80x24: a header and one row per GPU (bar of reserved
    memory, allocated, reserved, peak / the card's total)."""
    folder = write_four_gpu_run(snapshot_project / "runs", t0=T0)
    os.utime(folder / "status.json", (T0 + 5, T0 + 5))  # the newest run: selected on start

    async def run_before(pilot):
        screen = pilot.app.screen
        assert await wait_until(pilot, lambda: len(screen.query_one("#vram").cards) == 4)
        screen.query_one("#train-tabs").active = "tab-vram"
        await settle(pilot)

    app = CarExpertApp("carexpert.toml", services=fake_services(gpus=FAKE_FOUR_GPUS), mode="train")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_system_screen_four_gpus(snap_compare, snapshot_project):
    """Four H200s at 80x24: one row each (name, VRAM bar, used/total, utilisation, temperature, power)."""

    async def run_before(pilot):
        screen = pilot.app.screen
        assert await wait_until(pilot, lambda: len(screen.query("GpuRow")) == 4
                                and screen.query_one("#checks").row_count == 4)
        await settle(pilot)

    app = CarExpertApp("carexpert.toml", services=fake_services(gpus=FAKE_FOUR_GPUS), mode="system")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_eval_screen(snap_compare, snapshot_project, size):
    """The Items tab of the finished run's newest evaluation: item table with colour-coded verdicts of
    base+rag and tuned+rag, and the first item's two answers side by side with its retrieved passages."""

    async def run_before(pilot):
        assert await wait_until(pilot, lambda: pilot.app.screen.results is not None)
        await pilot.press("i")
        await settle(pilot)

    assert snap_compare(make_app("eval"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_eval_summary_chart(snap_compare, snapshot_project, size):
    """The Summary tab of the four-side evaluation: the overview (base+rag → tuned+rag, hallucinated,
    false refusals, guard), a bar chart of the score per category with one coloured bar per side
    (base, base+rag, tuned, tuned+rag) and the base→tuned table; at 80 columns the chart sits above
    the table, at 120 beside it."""

    async def run_before(pilot):
        assert await wait_until(pilot, lambda: pilot.app.screen.results is not None)
        await settle(pilot)

    assert snap_compare(make_app("eval"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_chat_screen(snap_compare, snapshot_project, size):
    """One question and its streamed Markdown answer (bold model name) with the finish note and
    the answer's sources under it; "retrieval on" top right; the API bar ("API off · ctrl+o ...")
    above the prompt; at 120 columns the sampling panel is shown on the right."""

    async def run_before(pilot):
        await pilot.press(*"GR86 power?", "enter")
        assert await wait_until(pilot, lambda: pilot.app.screen.query(".answer-sources"))
        await settle(pilot)

    assert snap_compare(make_app("chat"), terminal_size=size, run_before=run_before)


def test_help_screen(snap_compare, snapshot_project):
    """The help table over the System screen at 80x24."""

    async def run_before(pilot):
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(make_app("system"), terminal_size=(80, 24), run_before=run_before)
