"""The app's key-to-render latency while it follows a run that logs 100 events a second.

Runs the reliability load test's scenario (``tests/reliability/app_load_scenario.py``: a
writer process appends full step events plus a log line each at ``--rate`` a second; the
real app follows the run on the Train screen; ``m`` is pressed every 0.4 s and timed from
the press to the first frame that shows the change) and writes a JSON with p50/p95/max,
every latency, the machine (CPU model, cores, load average before and after) and the
duration. ``--profile`` also records where the app's UI thread spent its time (cProfile
of the event loop's thread; worker threads are not in it).

    python benchmarks/app_latency.py --seconds 25 --out benchmarks/results/cpu-app-latency/main-25s.json
    python benchmarks/app_latency.py --seconds 25 --profile /tmp/app.pstats   # then: python -m pstats

The load average matters: on a shared 2-core machine another process's CPU time shows up
as latency, so compare runs made under similar load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.app_load_scenario import EVENTS_PER_SECOND, run_load


def cpu_model() -> str:
    """The CPU as ``lscpu`` names it (``platform.processor()`` is often empty on Linux)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class CollectorPauses:
    """How long each garbage collection took, by generation (``gc.callbacks``): a full collection stops
    the UI thread, and its length grows with the objects the app keeps alive."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def summary(self) -> dict[str, dict[str, float]]:
        return {f"gen{generation}": {"count": len(values), "total": round(sum(values) * 1000, 1),
                                     "max": round(max(values, default=0.0) * 1000, 1)}
                for generation, values in self.pauses.items()}


def collector_pauses() -> CollectorPauses:
    pauses = CollectorPauses()
    gc.callbacks.append(pauses)
    return pauses


def git_head() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=25.0, help="how long the writer logs (default 25)")
    parser.add_argument("--rate", type=float, default=EVENTS_PER_SECOND, help="step events a second (default 100)")
    parser.add_argument("--out", type=Path, help="write the JSON here (printed either way)")
    parser.add_argument("--profile", type=Path, help="save a cProfile of the UI thread here (pstats format)")
    parser.add_argument("--label", default="", help="a note kept in the JSON (e.g. 'main' or 'coalesced')")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the collector as a test process does (carexpert-tui freezes long-lived objects)")
    args = parser.parse_args()

    import textual

    load_before = os.getloadavg()
    pauses = collector_pauses()
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="carexpert-app-latency-") as folder:
        os.chdir(folder)
        if profiler is not None:
            profiler.enable()
        result = asyncio.run(run_load(Path(folder), seconds=args.seconds, rate=args.rate,
                                       freeze_gc=not args.no_gc_freeze))
        if profiler is not None:
            profiler.disable()
        os.chdir(ROOT)
    load_after = os.getloadavg()
    print(result.summary())
    ms = 1000
    record = {
        "benchmark": "app key-to-render latency while following a run that logs fast",
        "label": args.label,
        "command": "python benchmarks/app_latency.py " + " ".join(sys.argv[1:]),
        "git": git_head(),
        "seconds": args.seconds,
        "events_per_second": args.rate,
        "step_events": result.total_steps,
        "key_presses": len(result.latencies),
        "latency_ms": {"p50": round(result.percentile(0.5) * ms, 1), "p95": round(result.percentile(0.95) * ms, 1),
                       "max": round(max(result.latencies) * ms, 1)},
        "latencies_ms": [round(value * ms, 1) for value in result.latencies],
        "caught_up": result.caught_up,
        "chart_points": result.chart_points,
        "log_lines": result.log_lines,
        "rss_mib": [round(result.rss_start_mib), round(result.rss_end_mib)],
        "wall_s": round(result.wall_s, 1),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "textual": textual.__version__,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in load_after]},
        "profiled": bool(args.profile),
        "gc_freeze": not args.no_gc_freeze,
        "gc_pauses_ms": pauses.summary(),
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    if profiler is not None:
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(args.profile)
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(40)
        args.profile.with_suffix(".txt").write_text(stream.getvalue(), encoding="utf-8")
    return 0 if result.caught_up and result.writer_returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
