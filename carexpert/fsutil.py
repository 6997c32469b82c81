"""Atomic, backed-up file writes.

Every file carexpert writes goes to a temporary name in the same folder, is flushed
and fsynced, and is then renamed over the target, so a crash or a full disk never
leaves a half-written file where a good one was. Files a user owns keep a backup of
what was replaced.

Reading is guarded too: ``read_limited`` reads a whole file only when it is a regular
file no bigger than the caller's limit, so a FIFO, ``/dev/zero`` or a file of many GB
given by mistake gets a clear message before anything is allocated or waited on.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from carexpert.errors import UserError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _mode_for(target))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def _mode_for(target: Path) -> int:
    """Keep an existing file's permissions; new files get the usual 0666 minus the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def backup_path(path: str | os.PathLike) -> Path:
    """Where the backup of ``path`` lives: ``name.bak`` beside it."""
    target = Path(path)
    return target.with_name(target.name + ".bak")


def write_user_file(path: str | os.PathLike, text: str) -> Path | None:
    """Atomically replace a user's file, keeping the old content as ``name.bak``.

    Returns the backup path, or None when there was nothing to back up.
    The backup is itself written atomically: on a full disk the previous ``.bak`` stays
    whole instead of being replaced by a truncated copy, and the file is not touched.
    """
    target = Path(path)
    backup = None
    if target.exists():
        backup = backup_path(target)
        atomic_write_bytes(backup, target.read_bytes())
        shutil.copystat(target, backup)
    atomic_write_text(target, text)
    return backup


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def read_limited(path: str | os.PathLike, limit: int, what: str, fix: str = "") -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; a UserError otherwise.

    ``what`` names the file for the message ("the config file", "the dataset"). The file
    is opened non-blocking, so one swapped for a FIFO after the check cannot hang us.
    """
    target = Path(path)
    where = str(target)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UserError(f"{what} does not exist", where=where, fix=fix) from None
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise UserError(f"{what} is a folder, not a file", where=where, fix=fix) from None
        raise UserError(f"cannot read {what} ({exc.strerror})", where=where, fix=fix) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UserError(f"{what} is a folder, not a file", where=where, fix=fix)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{what} is not a regular file (a FIFO, device or socket), so carexpert does not read "
                            "it", where=where, fix=fix or "give the path of an ordinary file")
        if info.st_size > limit:
            raise UserError(f"{what} is {_size(info.st_size)}, more than the {_size(limit)} carexpert reads",
                            where=where, fix=fix or "check that this is the right file")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while we read, or a /proc file that reports size 0
                raise UserError(f"{what} is larger than the {_size(limit)} carexpert reads", where=where,
                                fix=fix or "check that this is the right file")
        return b"".join(chunks)
    except OSError as exc:
        raise UserError(f"cannot read {what} ({exc.strerror})", where=where, fix=fix) from None
    finally:
        os.close(fd)
