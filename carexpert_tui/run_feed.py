"""A followed run's new events and log text, read together once per refresh tick.

A trainer can log a hundred events a second, each with a log line. Handing each read to
the UI thread as it comes means a screen update per read, for the charts, the progress
line and the log each; the key the user presses waits behind them. So the worker that
follows a run reads both files once per tick (``ui.refresh_seconds``) and hands over one
``RunBatch``: every event and every log line read since the last tick, in order, none
dropped; the run view applies a batch in one update (``carexpert_tui.screens.train_run_view``).
When the events file is far ahead (a long run opened late) the next read follows at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carexpert.runs import EventFollower, RunPaths
from carexpert.runs.log_tail import LogFollower

LOG_TAIL_BYTES = 64 * 1024


@dataclass
class RunBatch:
    """Everything read from the run in one tick: complete events and whole log lines."""

    events: list[dict[str, Any]] = field(default_factory=list)
    log_text: str = ""

    def __bool__(self) -> bool:
        return bool(self.events or self.log_text)


class RunFeed:
    """Reads a run's ``events.jsonl`` from the top and ``train.log`` from its last ``tail_bytes``."""

    def __init__(self, paths: RunPaths, *, tail_bytes: int = LOG_TAIL_BYTES):
        self.events = EventFollower(paths.events)
        self.log = LogFollower(paths.log, tail_bytes=tail_bytes)

    def read(self) -> RunBatch:
        """What both files gained since the last read (an empty batch when nothing)."""
        return RunBatch(self.events.poll(), self.log.poll())

    @property
    def behind(self) -> bool:
        """The last read stopped at the per-read cap: read again without waiting for the tick."""
        return self.events.behind
