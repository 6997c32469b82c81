"""``status.json``: a run's current state, written atomically by its trainer.

Readers combine it with a liveness check: a run whose file says "running" but whose
process is gone (SIGKILL, power loss) is reported as ``dead`` — resumable from its
last checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from carexpert.fsutil import atomic_write_json

STATES = ("pending", "running", "stopping", "stopped", "finished", "failed")
LIVE_STATES = ("pending", "running", "stopping")


@dataclass
class RunStatus:
    state: str = "pending"
    pid: int | None = None
    host: str = field(default_factory=socket.gethostname)
    step: int = 0
    max_steps: int | None = None
    epoch: float = 0.0
    error: str | None = None
    advice: list[dict] = field(default_factory=list)  # {text, changes} items, see events.py
    started: float | None = None
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_status(path: str | os.PathLike, status: RunStatus) -> None:
    """Atomically replace ``status.json``."""
    status.updated = time.time()
    atomic_write_json(path, status.to_dict())


def read_status(path: str | os.PathLike) -> RunStatus | None:
    """The status in ``path``, or None when missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    known = {k: v for k, v in data.items() if k in RunStatus.__dataclass_fields__}
    try:
        return RunStatus(**known)
    except TypeError:
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine (zombies count as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def effective_state(status: RunStatus | None) -> str:
    """The state to show: ``dead`` for a live state whose process is gone on this host."""
    if status is None:
        return "unknown"
    if status.state in LIVE_STATES and status.host == socket.gethostname() and not pid_alive(status.pid):
        return "dead"
    return status.state
