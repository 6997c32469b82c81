"""The bounded queue in front of the model: one answer at a time, the rest wait, overflow gets 503.

Requests become ``Job``s. ``Scheduler.submit`` admits a job only while fewer than
``capacity`` jobs are waiting or running; otherwise it raises ``QueueFull`` with a
``retry_after`` estimate (seconds) for the ``Retry-After`` header. One worker thread runs
the jobs in order through ``execute`` (which talks to the engine) and hands every event to
the job's ``emit`` callback, which the web layer turns into SSE chunks or one JSON body.

A job's ``cancel`` event is set when its client disconnects: a waiting job is skipped, and
a running one stops within one token (the engine checks it on the decode thread).
Counters and the recent decode rate feed the server's ``status.json``. No web imports here.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from carexpert.chat.sampling import SamplingSettings

RATE_WINDOW_SECONDS = 60.0


class QueueFull(Exception):
    """Every place in the queue is taken; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    """One chat completion request, as the engine needs it."""

    model: str
    question: str
    sampling: SamplingSettings
    history: list[tuple[str, str]] = field(default_factory=list)
    system: str | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    retrieval: bool = True
    emit: Callable[[str, Any], None] = lambda kind, payload: None  # ("chunk", text) | ("done", dict) | ("error", exc)
    cancel: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class Counters:
    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    rejected: int = 0
    failed: int = 0
    tokens: int = 0


class Scheduler:
    """A FIFO of jobs served by one worker thread (the model answers one request at a time)."""

    def __init__(self, execute: Callable[[Job], dict[str, Any]], capacity: int = 32):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.execute = execute
        self.capacity = capacity
        self.counters = Counters()
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._condition = threading.Condition()
        self._closed = False
        self._recent: collections.deque[tuple[float, int, float]] = collections.deque()  # (when, tokens, seconds)
        self._seconds_per_job: float = 5.0
        self._thread = threading.Thread(target=self._work, name="carexpert-serve-queue", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    # ----- admission ---------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job``, or raise ``QueueFull`` when ``capacity`` jobs are already waiting or running."""
        with self._condition:
            if self._closed:
                raise QueueFull(5)
            busy = len(self._waiting) + (self._running is not None)
            if busy >= self.capacity:
                self.counters.rejected += 1
                raise QueueFull(max(1, math.ceil(self._seconds_per_job * (busy - self.capacity + 1))))
            self.counters.requests += 1
            self._waiting.append(job)
            self._condition.notify()

    def snapshot(self) -> dict[str, Any]:
        """Counters, queue lengths and the decode rate, for ``status.json``."""
        with self._condition:
            self._forget_old(time.monotonic())
            tokens = sum(t for _, t, _ in self._recent)
            seconds = sum(s for _, _, s in self._recent)
            return {**vars(self.counters), "running": int(self._running is not None), "waiting": len(self._waiting),
                    "capacity": self.capacity, "tokens_per_second": tokens / seconds if seconds > 0 else None}

    def close(self) -> None:
        """Stop taking jobs and cancel every waiting and running one."""
        with self._condition:
            self._closed = True
            for job in self._waiting:
                job.cancel.set()
            if self._running is not None:
                self._running.cancel.set()
            self._condition.notify_all()

    # ----- the worker --------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._condition:
            while not self._waiting and not self._closed:
                self._condition.wait()
            if not self._waiting:
                return None
            self._running = self._waiting.popleft()
            return self._running

    def _work(self) -> None:
        while (job := self._next()) is not None:
            started = time.monotonic()
            outcome = "failed"
            result: dict[str, Any] = {}
            try:
                if job.cancel.is_set():
                    outcome = "cancelled"  # its client left while it waited
                    continue
                result = self.execute(job)
                outcome = "cancelled" if job.cancel.is_set() or result.get("finish_reason") == "cancelled" \
                    else "completed"
                job.emit("done", result)
            except BaseException as error:  # noqa: BLE001 - handed to the request; the worker keeps serving
                job.emit("error", error)
            finally:
                self._finished(job, outcome, result, time.monotonic() - started)

    def _finished(self, job: Job, outcome: str, result: dict[str, Any], seconds: float) -> None:
        now = time.monotonic()
        with self._condition:
            self._running = None
            setattr(self.counters, outcome, getattr(self.counters, outcome) + 1)
            tokens = int(result.get("completion_tokens") or 0)
            self.counters.tokens += tokens
            decode_seconds = result.get("decode_seconds")
            if tokens > 1 and decode_seconds:
                self._recent.append((now, tokens, float(decode_seconds)))
            if outcome == "completed":
                self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * seconds
            self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        while self._recent and now - self._recent[0][0] > RATE_WINDOW_SECONDS:
            self._recent.popleft()
