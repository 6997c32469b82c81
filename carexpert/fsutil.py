"""Atomic, backed-up file writes.

Every file carexpert writes goes to a temporary name in the same folder, is flushed
and fsynced, and is then renamed over the target, so a crash or a full disk never
leaves a half-written file where a good one was. Files a user owns keep a backup of
what was replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


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
