"""``status.json``: a run's current state, written atomically by its trainer.

Readers combine it with a liveness check: a run whose file says "running" but whose
process is gone (SIGKILL, power loss) is reported as ``dead`` — resumable from its
last checkpoint.

A failure must be recorded even on a full disk, when it is most likely: each run
folder keeps a small space reserve (``.status-reserve``, made at launch), and a
status write that fails for lack of space frees the reserve and tries once more.

``read_status`` trusts nothing in the file: an oversized file, one nested too
deeply or a field of the wrong type (``"pid": "1"``) makes that one run's status
unreadable (shown as "unknown"), never the whole run list.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
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


RESERVE_NAME = ".status-reserve"
RESERVE_BYTES = 256 * 1024
MAX_STATUS_BYTES = 256 * 1024
_NUMBER = (int, float)
# The type each field must have in the file (None allowed where the dataclass allows it).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "state": (str,), "pid": (int, type(None)), "host": (str,), "step": (int,), "max_steps": (int, type(None)),
    "epoch": _NUMBER, "error": (str, type(None)), "advice": (list,), "started": (*_NUMBER, type(None)),
    "updated": _NUMBER,
}


def reserve_status_space(run_root: str | os.PathLike) -> bool:
    """Set aside ``RESERVE_BYTES`` in the run folder for the final status write; False if there is no room."""
    path = Path(run_root) / RESERVE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return False
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
        return True
    except OSError:
        os.close(fd)
        fd = -1
        _release_reserve(Path(run_root))
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def _release_reserve(run_root: Path) -> bool:
    try:
        os.unlink(run_root / RESERVE_NAME)
        return True
    except OSError:
        return False


def write_status(path: str | os.PathLike, status: RunStatus) -> None:
    """Atomically replace ``status.json``; on a full disk, free the run's reserve and try again."""
    status.updated = time.time()
    try:
        atomic_write_json(path, status.to_dict())
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not _release_reserve(Path(path).parent):
            raise
        atomic_write_json(path, status.to_dict())


def read_status(path: str | os.PathLike) -> RunStatus | None:
    """The status in ``path``, or None when missing, unreadable, too big or not what carexpert writes."""
    target = Path(path)
    try:
        info = os.lstat(target)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_STATUS_BYTES:
            return None
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    known = {k: v for k, v in data.items() if k in RunStatus.__dataclass_fields__}
    for key, value in known.items():
        if not isinstance(value, _FIELD_TYPES[key]) or isinstance(value, bool):
            return None
    if any(not isinstance(item, dict) for item in known.get("advice", [])) or known.get("state", "pending") not in STATES:
        return None
    try:
        return RunStatus(**known)
    except TypeError:
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine (zombies count as gone)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
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
