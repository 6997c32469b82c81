"""The app following a run that logs fast: the scenario the load test asserts on and the benchmark times.

A writer process (the trainer's stand-in, with the real ``EventWriter`` and status file)
appends full step events at ``rate`` a second, plus a log line each, for ``seconds``.
Meanwhile the real app follows the run on the Train screen and ``m`` (mark the run) is
pressed every ``press_every`` seconds; each press is timed from the key press to the
first frame the app hands to its driver that shows the mark ("+ run-…" in the run list)
or shows it gone. One owner for the scenario: ``tests/reliability/test_app_load.py``
asserts on what ``run_load`` returns (a frozen UI, caps, catching up) and
``benchmarks/app_latency.py`` records the latencies with the machine's load.
"""

from __future__ import annotations

import gc
import re
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from textual.widgets import Log

import carexpert_tui.app
from carexpert.runs import RunPaths, read_status
from carexpert_tui.app import CarExpertApp
from carexpert_tui.screens.train import TrainScreen
from carexpert_tui.widgets.metric_chart import MetricChart
from tests.tui.doubles import fake_services, wait_until

RUN_ID = "run-20261125-170000-load"
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


@dataclass
class LoadResult:
    """What one run of the scenario measured and what the app showed at its end."""

    seconds: float
    rate: float
    total_steps: int
    latencies: list[float] = field(default_factory=list)  # key press to frame, seconds
    caught_up: bool = False  # the app's last shown step is the writer's last step
    finished_seen: bool = False
    writer_returncode: int | None = None
    writer_output: str = ""
    chart_points: dict[str, int] = field(default_factory=dict)
    lr_points: int = 0
    max_points: int = 0
    log_lines: int = 0
    rss_start_mib: float = float("nan")
    rss_end_mib: float = float("nan")
    wall_s: float = 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def summary(self) -> str:
        half = len(self.latencies) // 2
        early, late = statistics.median(self.latencies[:half]), statistics.median(self.latencies[half:])
        ms = 1000
        return (f"app load: {self.total_steps} step events at {self.rate:.0f}/s over {self.seconds:.0f}s; "
                f"{len(self.latencies)} key presses; input-to-frame p50 {self.percentile(0.5) * ms:.0f} ms, "
                f"p95 {self.percentile(0.95) * ms:.0f} ms, max {max(self.latencies) * ms:.0f} ms "
                f"(mean {statistics.mean(self.latencies) * ms:.0f} ms); chart points kept {self.chart_points} "
                f"+ lr {self.lr_points}; log lines {self.log_lines}; RSS {self.rss_start_mib:.0f} -> "
                f"{self.rss_end_mib:.0f} MiB; median first half {early * ms:.0f} ms, second half {late * ms:.0f} ms")


class KeyNeverShown(RuntimeError):
    """A key press that no frame showed within the wait: the UI is frozen."""


def rss_mib() -> float:
    """This process's resident memory (the app runs in it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_load(folder: Path, *, seconds: float, rate: float = EVENTS_PER_SECOND,
                   press_every: float = PRESS_EVERY_S, freeze_gc: bool = True) -> LoadResult:
    """Start the writer under ``folder``, follow its run in the app and time key presses until it ends."""
    config = folder / "carexpert.toml"
    runs_dir = folder / "runs"
    config.write_text(f'[train]\nruns_dir = "{runs_dir.as_posix()}"\n', encoding="utf-8")
    paths = RunPaths(runs_dir / RUN_ID)
    paths.root.mkdir(parents=True)
    result = LoadResult(seconds=seconds, rate=rate, total_steps=int(rate * seconds))
    started = time.perf_counter()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(paths.root), str(rate), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    app = FrameClock(str(config), services=fake_services(), mode="train", freeze_gc=freeze_gc)  # as carexpert-tui runs
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            loss = screen.query_one("#loss-chart", MetricChart)
            if not await wait_until(pilot, lambda: screen.selected == RUN_ID and len(loss.series["train"]) > 0,
                                    timeout=20):
                raise KeyNeverShown("the app never showed the run's first step")
            result.rss_start_mib = rss_mib()
            marked = False
            while writer.poll() is None:
                marked = not marked
                app.expected, app.seen_at = marked, None
                pressed = time.perf_counter()
                await pilot.press("m")
                if not await wait_until(pilot, lambda: app.seen_at is not None, timeout=10, step=0.005):
                    raise KeyNeverShown("the key press never reached the screen")
                result.latencies.append(app.seen_at - pressed)
                app.expected = None
                await pilot.pause(press_every)
            result.writer_returncode = writer.returncode
            result.caught_up = await wait_until(
                pilot, lambda: (loss.series["train"].last or (0, 0))[0] == result.total_steps, timeout=10)
            result.finished_seen = await wait_until(pilot, lambda: read_status(paths.status).state == "finished")
            result.chart_points = {name: len(series) for name, series in loss.series.items()}
            result.max_points = loss.series["train"].max_points
            result.lr_points = len(screen.query_one("#lr-chart", MetricChart).series["lr"])
            result.log_lines = screen.query_one("#run-log", Log).line_count
            result.rss_end_mib = rss_mib()
    finally:
        gc.unfreeze()  # this process outlives the app (a test run, a benchmark): let its objects be collected again
        if writer.poll() is None:
            writer.kill()
        out, _ = writer.communicate()
        result.writer_output = (out or "").strip()
    result.wall_s = time.perf_counter() - started
    return result
