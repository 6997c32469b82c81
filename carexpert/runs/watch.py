"""Follow a run's events until it ends, and fold them into one progress picture.

``follow_run`` is the loop behind ``carexpert runs watch`` and the foreground
``carexpert train``: it reads ``events.jsonl`` through ``EventFollower`` (the reader
the app uses too) and stops once the run reaches a final state, or once its process
is found dead and every event it wrote has been read. ``RunProgress`` keeps the
latest figures for a display; it knows nothing about how they are drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from carexpert.runs.control import run_state
from carexpert.runs.events import EventFollower
from carexpert.runs.paths import RunPaths
from carexpert.runs.status import LIVE_STATES


def follow_run(run: RunPaths, *, poll_seconds: float = 0.25, from_start: bool = True,
               should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """Yield the run's events as they come; return when the run has ended.

    ``from_start=False`` skips the history and shows only what happens next.
    ``should_stop`` lets a caller end the loop early (e.g. on Ctrl-C).
    """
    follower = EventFollower(run.events)
    if not from_start:
        follower.read_all()
    while not should_stop():
        events = follower.poll()
        if events:
            yield from events
            continue
        # The trainer emits its final status event before it rewrites status.json, so once the
        # state is no longer live, one more read gets everything it wrote.
        if run_state(run) not in LIVE_STATES:
            yield from follower.read_all()
            return
        time.sleep(poll_seconds)


@dataclass
class RunProgress:
    """The latest state of a run, folded from its events."""

    run_id: str = ""
    state: str = "pending"
    step: int = 0
    max_steps: int | None = None
    epoch: float = 0.0
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    val_loss: float | None = None
    perplexity: float | None = None
    peak_gpu_bytes: int | None = None
    last_checkpoint: str | None = None
    error: str | None = None
    advice: list[Any] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    resumed_from: int | None = None

    def update(self, event: dict[str, Any]) -> None:
        """Fold one event in; a field of the wrong type (the log is a file anyone could edit) is ignored."""
        kind = event.get("type")
        if kind == "start":
            self.run_id = _text(event.get("run_id")) or self.run_id
            self.resumed_from = _number(event.get("resumed_from"), int)
        elif kind == "step":
            for name in ("step", "max_steps", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "eta_s"):
                value = _number(event.get(name), int if name in ("step", "max_steps") else float)
                if value is not None:
                    setattr(self, name, value)
            listed = event.get("gpus")
            gpus = listed if isinstance(listed, list) else []
            peaks = [_number(g.get("peak"), int) or 0 for g in gpus if isinstance(g, dict)]
            if peaks:
                self.peak_gpu_bytes = max(peaks)
        elif kind == "eval":
            self.val_loss = _number(event.get("val_loss"), float)
            self.perplexity = _number(event.get("perplexity"), float)
        elif kind == "checkpoint":
            self.last_checkpoint = _text(event.get("path"))
        elif kind == "status":
            self.state = _text(event.get("state")) or self.state
            self.step = _number(event.get("step"), int) or self.step
            self.error = _text(event.get("error"))
            advice = event.get("advice")
            self.advice = [a for a in advice if isinstance(a, dict)] if isinstance(advice, list) else []
            if _number(event.get("max_steps"), int):
                self.max_steps = _number(event.get("max_steps"), int)
        elif kind == "notice":
            message = _text(event.get("message"))
            if message and message not in self.notices:
                self.notices.append(message)  # each distinct notice once, across resumed segments


def _number(value: Any, kind: type) -> Any:
    """``value`` if it is a real number (a bool is not), as ``kind``; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind is int:
        return value if isinstance(value, int) else None
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
