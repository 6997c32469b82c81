"""The trainer's voice: events to ``events.jsonl``, state to ``status.json``, both from here.

Only rank 0 reports (other ranks get a reporter that writes nothing). A status
change is emitted as an event first and written to ``status.json`` second, so a
reader that sees the final state in the file has the final event too. Progress
updates rewrite ``status.json`` at most once a second.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from carexpert.runs.events import EventWriter
from carexpert.runs.paths import RunPaths
from carexpert.runs.status import RunStatus, read_status, write_status

STATUS_INTERVAL_S = 1.0


class Reporter:
    def __init__(self, run: RunPaths, *, enabled: bool = True,
                 on_event: Callable[[dict[str, Any]], None] | None = None):
        self.run = run
        self.enabled = enabled
        self.on_event = on_event
        self.writer = EventWriter(run.events) if enabled else None
        previous = read_status(run.status) if enabled else None
        self.status = previous or RunStatus()
        self.status.pid, self.status.host = os.getpid(), socket.gethostname()
        self._last_status_write = 0.0

    def emit(self, type_: str, **fields: Any) -> dict[str, Any] | None:
        if not self.writer:
            return None
        event = self.writer.emit(type_, **fields)
        if self.on_event:
            self.on_event(event)
        return event

    def set_state(self, state: str, *, error: str | None = None, advice: list | None = None) -> None:
        """A status change: one event, then ``status.json``."""
        if not self.enabled:
            return
        self.status.state, self.status.error, self.status.advice = state, error, list(advice or [])
        if state == "running" and self.status.started is None:
            self.status.started = time.time()
        self.emit("status", state=state, error=error, advice=self.status.advice, step=self.status.step,
                  max_steps=self.status.max_steps)
        self._write()

    def progress(self, step: int, max_steps: int | None, epoch: float | None) -> None:
        if not self.enabled:
            return
        self.status.step, self.status.max_steps = step, max_steps
        self.status.epoch = float(epoch or 0.0)
        if time.monotonic() - self._last_status_write >= STATUS_INTERVAL_S:
            self._write()

    def hand_over(self, pid: int) -> None:
        """Name ``pid`` (the supervisor of a several-GPU run) as the run's process: this one is exiting."""
        if not self.enabled:
            return
        self.status.pid = pid
        self._write()

    def _write(self) -> None:
        write_status(self.run.status, self.status)
        self._last_status_write = time.monotonic()

    def close(self) -> None:
        if self.writer:
            self.writer.close()
