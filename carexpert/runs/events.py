"""The run's event log: ``events.jsonl``, one JSON object a line, append-only.

One writer (the trainer, rank 0 only) and one reader (``EventFollower``), both here,
so the schema is defined once. Every event has ``v`` (schema version), ``type`` and
``time`` (Unix seconds). The reader tolerates a torn last line: a line without its
newline is left for the next poll, and a corrupt complete line is skipped and counted.

Event types and their main fields (more may be present; readers ignore unknown keys):

- ``start``: run_id, config (dict), pid, host, world_size, resumed_from (step or null)
- ``summary``: total_params, trainable_params, trainable_percent, footprint_bytes, quantized_layers,
  device, optimizer, precision, notices (list of honest fallbacks, e.g. optimizer on CPU),
  plan ({device, precision, compute_dtype, optimizer, gradient_checkpointing, micro_batch,
  grad_accum, world_size, compile, padding_free, head_loss, selective_logits}: what this machine really
  does),
  train_examples, validation_examples
- ``step``: step, max_steps, epoch, loss, lr, grad_norm, tokens_per_s (real tokens: padding is not
  counted), samples_per_s, tokens and train_s (the real tokens since the previous step event and the
  training seconds they took: tokens_per_s = tokens / train_s), eta_s (training time only), gpus
  (list of {rank, index, allocated, reserved, peak}: bytes, one entry per rank, in rank order; index
  is the CUDA device on the rank's host), ram_bytes (rank 0's process)
- ``eval``: step, val_loss, perplexity
- ``checkpoint``: step, path (a complete checkpoint: written only after its completion marker)
- ``status``: state (see ``carexpert.runs.status.STATES``), error (text or null), step, max_steps,
  advice (list of {text, changes}: ``changes`` maps config keys such as "train.batch_size" to the
  value to set, e.g. after running out of GPU memory)
- ``stalled``: seconds_since_step, median_step_s
- ``notice``: message

A resumed run appends to the same file: a new ``start`` (with resumed_from) follows the
earlier segment's final ``status``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
EVENT_TYPES = ("start", "summary", "step", "eval", "checkpoint", "status", "stalled", "notice")


def make_event(type_: str, **fields: Any) -> dict[str, Any]:
    """A new event dict with the common fields filled in."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return {"v": SCHEMA_VERSION, "type": type_, "time": time.time(), **fields}


class EventWriter:
    """Appends events to ``events.jsonl``; each line is written with one ``write`` and flushed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the writer's life; close() closes it

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Write one event and return it."""
        event = make_event(type_, **fields)
        line = json.dumps(_finite(event), default=_jsonable, allow_nan=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
        return event

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.flush()
                try:
                    os.fsync(self._handle.fileno())
                except OSError:
                    pass
                self._handle.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite(value: Any) -> Any:
    """Replace NaN/inf floats (a diverged loss) with None so every line stays valid JSON."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    """Make numpy/torch scalars and NaN-like values JSON-safe."""
    if hasattr(value, "item"):
        return _finite(value.item())
    if isinstance(value, Path):
        return str(value)
    return str(value)


class EventFollower:
    """Reads new complete events from ``events.jsonl`` on each ``poll()``.

    Keeps a byte offset, so following a file that grows for hours costs only the new
    bytes. A partial last line (a writer mid-write, or one killed mid-line) is not
    consumed until its newline arrives; a complete line that is not valid JSON is
    skipped and counted in ``corrupt_lines``. If the file shrinks (deleted and
    recreated), reading starts again from the top.
    """

    def __init__(self, path: str | os.PathLike, max_bytes_per_poll: int = 8 * 1024 * 1024):
        self.path = Path(path)
        self.offset = 0
        self.corrupt_lines = 0
        self.max_bytes_per_poll = max_bytes_per_poll
        self.behind = False
        """The last poll stopped at ``max_bytes_per_poll``: more is waiting, poll again without pausing."""

    def poll(self) -> list[dict[str, Any]]:
        """New events since the last poll (possibly none)."""
        self.behind = False
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset = 0
        if size == self.offset:
            return []
        self.behind = size - self.offset > self.max_bytes_per_poll
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(min(size - self.offset, self.max_bytes_per_poll))
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        complete = chunk[: end + 1]
        self.offset += len(complete)
        events = []
        for raw in complete.splitlines():
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                self.corrupt_lines += 1
                continue
            if isinstance(event, dict) and "type" in event:
                events.append(event)
            else:
                self.corrupt_lines += 1
        return events

    def read_all(self) -> list[dict[str, Any]]:
        """Every complete event from the current offset to the end of the file."""
        events: list[dict[str, Any]] = []
        while batch := self.poll():
            events.extend(batch)
        return events


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete events in a file (a torn last line is ignored)."""
    return EventFollower(path).read_all()


PROGRESS_EVENTS = ("start", "step", "eval", "checkpoint", "status")
STALL_TAIL_BYTES = 16 * 1024


def stalled_now(path: str | os.PathLike) -> bool:
    """Whether the newest progress event near the end of an events file is ``stalled`` (no step since).

    Reads only the file's last few KB, so a run list can ask it of every run on each refresh.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - STALL_TAIL_BYTES))
            lines = handle.read().splitlines()
    except OSError:
        return False
    for line in reversed(lines):
        try:
            kind = json.loads(line).get("type")
        except (ValueError, AttributeError):
            continue
        if kind == "stalled":
            return True
        if kind in PROGRESS_EVENTS:
            return False
    return False
