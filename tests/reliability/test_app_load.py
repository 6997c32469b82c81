"""The app following a run that logs fast stays responsive, with bounded memory (issue 9).

A writer process (the trainer's stand-in, with the real ``EventWriter`` and status file)
appends full step events at 100 a second, plus a log line each, for ``LOAD_SECONDS``
(default 25 s = 2,500 events; ``CAREXPERT_LOAD_SECONDS=600`` gives the issue's 10 minutes,
60,000 events). Meanwhile the test presses ``m`` (mark the run) every 0.4 s and times
input to render: from the key press to the first frame the app hands to its driver
that shows the mark ("+ run-…" in the run list) or shows it gone. p50/p95 are printed
(``pytest -s``) and p95 must stay under a second: generous, so it catches a frozen UI
rather than a slow machine.

Why 25 s says something about 10 minutes: the per-event cost is constant. The follower
reads only new bytes; charts keep at most ``max_points`` points (every other point is
dropped and the stride doubles); the log view keeps its last 2,000 lines. So the test
asserts those caps hold after the run and that the app caught up with the writer
(its last shown step is the writer's last step), i.e. no backlog grows with time.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from textual.widgets import Log

import carexpert_tui.app
from carexpert.runs import RunPaths, read_status
from carexpert_tui.app import CarExpertApp
from carexpert_tui.screens.train import TrainScreen
from carexpert_tui.widgets.metric_chart import MetricChart
from tests.tui.doubles import fake_services, wait_until

RUN_ID = "run-20261125-170000-load"
LOAD_SECONDS = float(os.environ.get("CAREXPERT_LOAD_SECONDS", "25"))
EVENTS_PER_SECOND = 100
PRESS_EVERY_S = 0.4
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from carexpert.runs import EventWriter, RunPaths, RunStatus, write_status
    root, rate, seconds = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    paths = RunPaths(root)
    total = int(rate * seconds)
    status = RunStatus(state="running", pid=os.getpid(), started=time.time(), max_steps=total)
    write_status(paths.status, status)
    gib = 1024 ** 3
    start = time.monotonic()
    with EventWriter(paths.events) as writer, open(paths.log, "a") as log:
        writer.emit("start", run_id=paths.run_id, pid=os.getpid(), world_size=1, resumed_from=None)
        for step in range(1, total + 1):
            delay = start + step / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            loss = 2.5 / (1 + step / 500) + 0.3
            writer.emit("step", step=step, max_steps=total, epoch=step / 1000, loss=loss, lr=2e-4,
                        grad_norm=0.8, tokens_per_s=51234.0, samples_per_s=40.0, eta_s=(total - step) / rate,
                        gpus=[{"index": 0, "allocated": 30 * gib, "reserved": 33 * gib, "peak": 35 * gib}],
                        ram_bytes=6 * gib)
            if step % 50 == 0:
                writer.emit("eval", step=step, val_loss=loss + 0.1, perplexity=3.0)
            log.write(f"step {step}/{total} loss {loss:.4f}\\n")
            log.flush()
            if step % 100 == 0:
                status.step = step
                write_status(paths.status, status)
        status.state = "finished"
        writer.emit("status", state="finished", error=None, step=total, max_steps=total, advice=[])
        write_status(paths.status, status)
    print(f"wrote {total} steps in {time.monotonic() - start:.1f}s", flush=True)
""")


class FrameClock(CarExpertApp):
    """The app, noting when each frame is handed to the driver and whether it shows what is awaited."""

    CSS_PATH = str(Path(carexpert_tui.app.__file__).with_name("app.tcss"))

    expected: bool | None = None  # awaited in the next frames: the mark shown (True) or gone (False)
    seen_at: float | None = None

    def _display(self, screen, renderable) -> None:
        if self.expected is not None and renderable is not None and self.seen_at is None:
            text = ANSI.sub("", "".join(renderable.render_segments(self.console)))
            if RUN_ID in text and ("+ " + RUN_ID in text) == self.expected:
                self.seen_at = time.perf_counter()
        super()._display(screen, renderable)


def rss_mib() -> float:
    """This process's resident memory (the app runs in it), for the printed report."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def test_app_following_a_100_events_per_second_run_stays_responsive(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "carexpert.toml").write_text('[train]\nruns_dir = "runs"\n', encoding="utf-8")
    paths = RunPaths(tmp_path / "runs" / RUN_ID)
    paths.root.mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(paths.root), str(EVENTS_PER_SECOND),
                               str(LOAD_SECONDS)], stdout=subprocess.PIPE, text=True)
    total_steps = int(EVENTS_PER_SECOND * LOAD_SECONDS)
    app = FrameClock("carexpert.toml", services=fake_services(), mode="train")
    latencies: list[float] = []
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            loss = screen.query_one("#loss-chart", MetricChart)
            assert await wait_until(pilot, lambda: screen.selected == RUN_ID and len(loss.series["train"]) > 0,
                                    timeout=20)
            rss_start = rss_mib()
            marked = False
            while writer.poll() is None:
                marked = not marked
                app.expected, app.seen_at = marked, None
                pressed = time.perf_counter()
                await pilot.press("m")
                assert await wait_until(pilot, lambda: app.seen_at is not None, timeout=10, step=0.005), \
                    "the key press never reached the screen"
                latencies.append(app.seen_at - pressed)
                app.expected = None
                await pilot.pause(PRESS_EVERY_S)
            assert writer.returncode == 0
            # caught up: the last step written is the last step shown, so no backlog grows with time
            assert await wait_until(pilot, lambda: loss.series["train"].last[0] == total_steps, timeout=10)
            assert await wait_until(pilot, lambda: read_status(paths.status).state == "finished")
            kept = {name: len(series) for name, series in loss.series.items()}
            lr_kept = len(screen.query_one("#lr-chart", MetricChart).series["lr"])
            log_lines = screen.query_one("#run-log", Log).line_count
            rss_end = rss_mib()
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    half = len(latencies) // 2
    early, late = statistics.median(latencies[:half]), statistics.median(latencies[half:])
    print(f"\napp load: {total_steps} step events at {EVENTS_PER_SECOND}/s over {LOAD_SECONDS:.0f}s; "
          f"{len(latencies)} key presses; input-to-frame p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms (mean {statistics.mean(latencies) * 1000:.0f} ms); "
          f"chart points kept {kept} + lr {lr_kept}; log lines {log_lines}; "
          f"RSS {rss_start:.0f} -> {rss_end:.0f} MiB; median first half {early * 1000:.0f} ms, "
          f"second half {late * 1000:.0f} ms")
    assert len(latencies) >= 5, "too few key presses measured to say anything"
    assert p95 < 1.0, f"input-to-render p95 {p95:.3f}s: the UI froze while following the run"
    assert kept["train"] <= loss.series["train"].max_points < total_steps  # decimated, not every event
    assert lr_kept <= loss.series["train"].max_points
    assert log_lines <= 2001
