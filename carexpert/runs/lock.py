"""One trainer per run folder: an ``fcntl.flock`` on ``run/.lock``.

The lock belongs to an open file, not to a pid, so it can be handed to a child:
the launcher takes it (a second launcher is refused at once, before anything is
written) and passes the descriptor to the training process, which keeps it open
for its whole life. The kernel drops it when the last holder exits, however it
ends (SIGKILL and power loss included), so a stale lock cannot outlive its run.
The file's text is the holder's pid, for messages only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from carexpert.errors import UserError


class RunLockedError(UserError):
    """Another trainer drives this run folder."""


class RunLock:
    """An exclusive, non-blocking lock on a run folder's ``.lock`` file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.fd: int | None = None

    @classmethod
    def adopt(cls, path: str | os.PathLike, fd: int) -> RunLock:
        """Wrap a descriptor inherited from the launcher (so ``close`` can release it early)."""
        lock = cls(path)
        lock.fd = fd
        return lock

    def acquire(self, holder_pid: int | None = None, wait_seconds: float = 0.0) -> RunLock:
        """Take the lock or raise ``RunLockedError`` naming the holder.

        ``wait_seconds`` allows for a holder that is just exiting (a run that has
        written its final status still takes a moment to end).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                holder = _read_pid(self.path)
                who = f" (pid {holder})" if holder else ""
                raise RunLockedError(f"another trainer is already driving this run{who}", where=str(self.path.parent),
                                     fix="watch it with 'carexpert runs watch', stop it with 'carexpert runs stop', "
                                         "or start a new run")
            time.sleep(0.1)
        self.fd = fd
        self.record_holder(holder_pid or os.getpid())
        return self

    def record_holder(self, pid: int) -> None:
        """Write the holder's pid into the lock file (after handing the lock to a child)."""
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)

    def close(self) -> None:
        """Close this process's descriptor (the lock is released once no process holds it)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lock_is_held(path: str | os.PathLike) -> bool:
    """Whether some process holds the lock (checked by trying to take it and letting go)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock, if it got one
    return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip() or 0) or None
    except (OSError, ValueError):
        return None
