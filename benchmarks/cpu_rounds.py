"""What the CPU decoding micro-benchmarks share: a median time per call, one printed line per round,
and the JSON they write (with the keys worth printing)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def median_ms(call: Callable[[], Any], calls: int) -> float:
    """The median wall time of ``calls`` calls, in milliseconds."""
    times = []
    for _ in range(calls):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1e3


def print_round(number: int, entry: dict[str, Any]) -> None:
    print(f"round {number}: load {entry['load_average_1min']:.1f} | "
          + " | ".join(f"{label} {ms:.1f}" for label, ms in entry["ms"].items()), flush=True)


def medians_over_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {label: statistics.median(r["ms"][label] for r in rounds) for label in rounds[0]["ms"]}


def write_result(out: Path, result: dict[str, Any], shown: Sequence[str]) -> None:
    """Write ``result`` as JSON to ``out`` and print the ``shown`` keys."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({key: result[key] for key in shown}, indent=1))
