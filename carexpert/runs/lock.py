"""One trainer per run folder: an ``fcntl.flock`` on ``run/.lock``.

The lock belongs to an open file, not to a pid, so it can be handed to a child:
the launcher takes it (a second launcher is refused at once, before anything is
written) and passes the descriptor to the training process, which keeps it open
for its whole life. The kernel drops it when the last holder exits, however it
ends (SIGKILL and power loss included), so a stale lock cannot outlive its run.
The file's text is the holder's pid and that process's start time (from
``/proc/PID/stat``), so a pid reused by an unrelated process is told apart.

Process control trusts the lock only as far as it can prove it (``lock_problem``):
``.lock`` must be a regular file in the run folder (a symbolic link, to another
run's lock say, is never followed), it must be held, and its recorded pid and start
time must match the live process that ``status.json`` names. Only then does
``carexpert runs stop`` send a signal.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
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
            fd = _open_lock(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                holder = read_holder(self.path)[0]
                who = f" (pid {holder})" if holder else ""
                raise RunLockedError(f"another trainer is already driving this run{who}", where=str(self.path.parent),
                                     fix="watch it with 'carexpert runs watch', stop it with 'carexpert runs stop', "
                                         "or start a new run")
            time.sleep(0.1)
        self.fd = fd
        self.record_holder(holder_pid or os.getpid())
        return self

    def record_holder(self, pid: int) -> None:
        """Write the holder's pid and start time into the lock file (after handing the lock to a child)."""
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid} {process_start_time(pid) or ''}\n".encode(), 0)

    def close(self) -> None:
        """Close this process's descriptor (the lock is released once no process holds it)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_lock(path: Path, flags: int) -> int:
    """Open the lock file itself: never through a symbolic link, never a FIFO or device."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError("the run's lock file is a symbolic link; carexpert never follows it", where=str(path),
                            fix=f"remove the link ({path}) if no trainer uses this run") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError("the run's lock file is not a regular file", where=str(path),
                        fix=f"remove {path} if no trainer uses this run")
    return fd


def lock_is_held(path: str | os.PathLike) -> bool:
    """Whether some process holds the lock (checked by trying to take it and letting go).

    Only a regular file counts: a link (to another run's held lock, say) or a FIFO is not a lock.
    """
    try:
        fd = _open_lock(Path(path), os.O_RDONLY)
    except (OSError, UserError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock, if it got one
    return False


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return None


def read_holder(path: str | os.PathLike) -> tuple[int | None, str | None]:
    """(pid, start time) recorded in a lock file; (None, None) when unreadable or not a regular file."""
    try:
        fd = _open_lock(Path(path), os.O_RDONLY)
    except (OSError, UserError):
        return None, None
    try:
        text = os.read(fd, 256).decode("ascii", "replace").split()
    finally:
        os.close(fd)
    try:
        pid = int(text[0]) if text else None
    except ValueError:
        return None, None
    return (pid if pid and pid > 0 else None), (text[1] if len(text) > 1 and text[1].isdigit() else None)


def lock_problem(path: str | os.PathLike, pid: int | None) -> str | None:
    """Why the lock does not prove that ``pid`` is this run's live trainer; None when it does."""
    target = Path(path)
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return "the run has no lock file"
    except OSError as exc:
        return f"its lock file cannot be read ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return "its lock file is a symbolic link"
    if not stat.S_ISREG(mode):
        return "its lock file is not a regular file"
    if not lock_is_held(target):
        return "no process holds its lock"
    holder, started = read_holder(target)
    if holder is None or not pid:
        return f"its lock names no pid, and status.json names pid {pid or '?'}"
    if started is None:
        return "its lock records no process start time (written by an older carexpert)"
    if process_start_time(holder) != started:
        return f"pid {holder} named by its lock is now a different process (its start time does not match)"
    # With several GPUs the lock's holder is the torch.distributed launcher and status.json names
    # its rank-0 worker: a direct child of the proven holder is this run's too.
    if pid != holder and parent_pid(pid) != holder:
        return f"its lock names pid {holder}, but status.json names pid {pid}, which is not that process or its child"
    return None


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` (``/proc/PID/stat`` field 4), or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
