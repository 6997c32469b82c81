"""Following a run's text logs (``train.log``, ``eval.log``) as they grow: new whole lines only.

The app shows the tail of a run's log beside its events. Like ``EventFollower`` for
``events.jsonl``, a follower keeps a byte offset so each poll costs only the new bytes, holds
back a torn last line until its newline arrives, and starts over when the file shrinks
(deleted and recreated).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_BYTES_PER_POLL = 1024 * 1024


def read_new_text(path: str | os.PathLike, offset: int) -> tuple[str, int]:
    """Text appended to ``path`` since ``offset`` (whole lines only) and the new offset."""
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        return "", offset
    if size < offset:
        offset = 0
    if size == offset:
        return "", offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        chunk = handle.read(min(size - offset, MAX_BYTES_PER_POLL))
    end = chunk.rfind(b"\n")
    if end < 0:
        return "", offset
    return chunk[: end + 1].decode("utf-8", errors="replace"), offset + end + 1


class LogFollower:
    """New lines of a log on each ``poll()``, starting ``tail_bytes`` before its current end."""

    def __init__(self, path: str | os.PathLike, tail_bytes: int = 64 * 1024):
        self.path = Path(path)
        try:
            self.offset = max(0, self.path.stat().st_size - tail_bytes)
        except FileNotFoundError:
            self.offset = 0

    def poll(self) -> str:
        text, self.offset = read_new_text(self.path, self.offset)
        return text
