"""Messages that cross widget or screen boundaries: facts, named in the past tense.

Workers report only through these (``post_message`` is thread-safe). "Latest value"
messages (a GPU sample, a run listing, a load progress line) can replace an unhandled
one of their kind so a backlog collapses; messages that carry data points that must be
kept (events, log text, answer chunks) never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from carexpert_tui.run_rows import RunRow


@dataclass
class GpuSampled(Message):
    """A fresh NVML reading (empty list: no GPU) and the host's RAM/CPU."""

    gpus: list[dict[str, Any]]
    host: dict[str, Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuSampled)


@dataclass
class ChecksFinished(Message):
    """The environment checks ran (``results`` as returned by ``carexpert.system.run_checks``)."""

    results: list[Any]


@dataclass
class RunsListed(Message):
    """The runs folder was scanned; one row per run, newest first."""

    rows: list[RunRow]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsListed)


@dataclass
class RunFollowed(Message):
    """One tick's new complete events from a run's events.jsonl and new text of its train.log
    (kept: every point matters; ``carexpert_tui.run_feed`` says why they come together)."""

    run_id: str
    events: list[dict[str, Any]]
    log_text: str


@dataclass
class RunControlFinished(Message):
    """A start/stop/resume command returned; ``run_id`` is the run it acted on (if known)."""

    action: str
    run_id: str | None
    ok: bool
    output: str


@dataclass
class EvalProgressed(Message):
    """A new line from a background evaluation, with the fraction done when it says so."""

    run_id: str
    line: str
    fraction: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EvalProgressed) and message.run_id == self.run_id


@dataclass
class EvalFinished(Message):
    """A background evaluation ended with this exit status."""

    run_id: str
    returncode: int
    tail: str = ""


@dataclass
class ModelLoadProgressed(Message):
    """The chat model is loading: what it is doing now and, when known, how far along."""

    text: str
    fraction: float | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelLoadProgressed)


@dataclass
class ModelLoaded(Message):
    """The chat session is ready; ``label`` names what was loaded."""

    label: str


@dataclass
class ModelLoadFailed(Message):
    """Loading the chat model failed; ``error`` says why in the user's words."""

    error: str


@dataclass
class ReplyStarted(Message):
    """The model began answering ``prompt``."""

    prompt: str


@dataclass
class ReplyChunkReceived(Message):
    """More answer text (already stripped of terminal escape sequences)."""

    text: str


@dataclass
class ReplyFinished(Message):
    """The answer ended; ``stopped`` when the user stopped it.

    ``sources``: the knowledge-store passages it was given (``id``, ``kind``, ``title``);
    ``retrieval``: whether the store was asked at all (False: a closed-book answer).
    """

    text: str
    stopped: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, str]] = field(default_factory=list)
    retrieval: bool = False
    retrieval_problem: str | None = None  # why retrieval was unavailable (no store, ...), if it was


@dataclass
class ReplyFailed(Message):
    """Generating the answer failed."""

    error: str


@dataclass
class ServerSampled(Message):
    """The API server's ``status.json`` was read (None: no server has run from here)."""

    status: Any

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ServerSampled)
