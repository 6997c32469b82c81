"""A run that logs fast is shown one batch per tick: every event and log line of the tick in one
update (one chart redraw holding every point, one log write), nothing dropped, nothing late."""

from __future__ import annotations

import shutil

from textual.widgets import Label, Log
from textual_plot import PlotWidget

from carexpert.runs import EventWriter, RunPaths
from carexpert_tui.app import CarExpertApp
from carexpert_tui.messages import RunFollowed
from carexpert_tui.run_feed import RunFeed
from carexpert_tui.widgets.metric_chart import MetricChart
from tests.tui.doubles import FIXTURE_RUNS, fake_services, wait_until


def step_event(step: int) -> dict:
    return {"v": 1, "type": "step", "time": 1_795_000_000.0 + step, "step": step, "max_steps": 5000,
            "epoch": step / 1000, "loss": 3.0 - step / 10_000, "lr": 1e-4 + step * 1e-8, "grad_norm": 0.5,
            "tokens_per_s": 9000.0, "samples_per_s": 20.0, "eta_s": 5000.0 - step}


def test_everything_written_between_two_reads_comes_as_one_batch_in_order(tmp_path):
    paths = RunPaths(tmp_path / "run-20261203-120000-feed")
    paths.root.mkdir()
    feed = RunFeed(paths)
    assert not feed.read()  # nothing yet (no files): an empty batch
    with EventWriter(paths.events) as writer, open(paths.log, "a", encoding="utf-8") as log:
        for step in range(1, 301):
            writer.emit("step", step=step, loss=1.0 / step)
            log.write(f"step {step}\n")
        log.write("half a li")  # a torn last line waits for its newline
    batch = feed.read()
    assert [event["step"] for event in batch.events] == list(range(1, 301))
    assert batch.log_text.splitlines() == [f"step {step}" for step in range(1, 301)]
    assert not feed.behind
    assert not feed.read()  # read once, never twice
    with open(paths.log, "a", encoding="utf-8") as log:
        log.write("ne\n")
    assert feed.read().log_text == "half a line\n"


def test_a_long_backlog_is_read_without_waiting_for_the_next_tick(tmp_path):
    paths = RunPaths(tmp_path / "run-20261203-120000-back")
    paths.root.mkdir()
    with EventWriter(paths.events) as writer:
        for step in range(1, 201):
            writer.emit("step", step=step, loss=1.0)
    feed = RunFeed(paths)
    feed.events.max_bytes_per_poll = 4096  # a 60,000-event run opened late, in miniature
    steps: list[int] = []
    reads = 0
    while True:
        steps += [event["step"] for event in feed.read().events]
        reads += 1
        if not feed.behind:
            break
    assert reads > 3
    assert steps == list(range(1, 201))


async def test_a_tick_of_many_events_is_one_chart_update_with_every_point(project, monkeypatch):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        loss = screen.query_one("#loss-chart", MetricChart)
        assert await wait_until(pilot, lambda: screen.selected is not None and len(loss.series["train"]) > 0)
        run_id = screen.selected
        shown = -1
        while len(loss.series["train"]) != shown:  # the fixture run is read to its end
            shown = len(loss.series["train"])
            await pilot.pause(0.5)
        first = int(loss.series["train"].last[0]) + 1
        log = screen.query_one("#run-log", Log)
        lines_before = log.line_count

        drawn: list[tuple[str, str, list[float]]] = []
        plot = PlotWidget.plot

        def counting_plot(widget, x, y, *args, **kwargs):
            drawn.append((widget.parent.id, kwargs.get("label"), [float(v) for v in x]))
            return plot(widget, x, y, *args, **kwargs)

        monkeypatch.setattr(PlotWidget, "plot", counting_plot)
        count = 400
        events = [step_event(step) for step in range(first, first + count)]
        text = "".join(f"step {event['step']} loss {event['loss']:.4f}\n" for event in events)
        screen.post_message(RunFollowed(run_id, events, text))
        await pilot.pause()
        # one redraw per chart for the whole tick, every new point kept, the line drawn to the newest
        assert sorted((chart, label) for chart, label, _ in drawn) == [("loss-chart", "train"), ("lr-chart", "lr")]
        new_steps = [float(step) for step in range(first, first + count)]
        assert loss.series["train"].xs[-count:] == new_steps
        assert screen.query_one("#lr-chart", MetricChart).series["lr"].xs[-count:] == new_steps
        for _chart, _label, xs in drawn:
            assert xs[-1] == new_steps[-1] and set(xs) <= set(loss.series["train"].xs)
        assert log.line_count == lines_before + count
        assert f"step {first + count - 1}/5000" in str(screen.query_one("#run-stats", Label).render())
