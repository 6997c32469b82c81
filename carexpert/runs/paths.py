"""Where everything about a run lives (the run-folder contract in docs/DESIGN).

A run folder is a real directory (never a symbolic link) directly inside
``train.runs_dir`` that carries carexpert's marker, ``.carexpert-run``, written when
its trainer is launched. Folders from before the marker count when their
``status.json`` is one carexpert wrote. Commands that change or delete runs act only
on such folders (``check_run_folder``), so a typo, a link or a folder that merely
holds a ``config.toml`` is never deleted or signalled.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from carexpert.errors import UserError

MARKER_NAME = ".carexpert-run"
MARKER_TEXT = "carexpert run folder: carexpert's run commands act on this folder\n"
# The largest status.json carexpert writes is a few KB; a bigger one is not ours.
MAX_STATUS_BYTES = 256 * 1024

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name; a UserError otherwise (no path traversal)."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise UserError(f"invalid run id {run_id!r}",
                        fix="use 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return run_id


def new_run_id(prefix: str = "run") -> str:
    """A sortable, unique id: ``run-20261125-094500-a1b2``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder."""

    root: Path

    @classmethod
    def of(cls, runs_dir: str | PathLike[str], run_id: str) -> RunPaths:
        return cls(Path(runs_dir) / validate_run_id(run_id))

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def marker(self) -> Path:
        return self.root / MARKER_NAME

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def eval_log(self) -> Path:
        """The output of an evaluation the app started (``carexpert eval RUN`` run detached)."""
        return self.root / "eval.log"

    @property
    def ranks(self) -> Path:
        """Per-rank failure records of a multi-GPU run (``carexpert.training.rank_failures``)."""
        return self.root / "ranks"

    @property
    def chats(self) -> Path:
        """Transcripts of chats with the run's adapter (``carexpert chat RUN``)."""
        return self.root / "chats"

    def exists(self) -> bool:
        return self.root.is_dir()


def mark_run_folder(paths: RunPaths) -> None:
    """Write the run marker (once), so run commands will act on this folder."""
    if not os.path.lexists(paths.marker):
        fd = os.open(paths.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(MARKER_TEXT)


def _regular_file(path: Path) -> bool:
    """Whether ``path`` itself (not what a link points at) is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _legacy_status(path: Path) -> bool:
    """A ``status.json`` as carexpert writes it (runs from before the marker)."""
    if not _regular_file(path) or os.lstat(path).st_size > MAX_STATUS_BYTES:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("state"), str) and "host" in data and "updated" in data


def is_run_folder(paths: RunPaths) -> bool:
    """A real folder (not a link) with carexpert's marker, or a status.json carexpert wrote."""
    return _real_dir(paths.root) and (_regular_file(paths.marker) or _legacy_status(paths.status))


def check_run_folder(paths: RunPaths) -> RunPaths:
    """``paths`` if it is a run folder carexpert may act on; a UserError saying why not otherwise."""
    where = str(paths.root)
    if os.path.islink(paths.root):
        raise UserError("is a symbolic link, not a run folder; carexpert does not follow links out of the "
                        "runs folder", where=where, fix=f"remove the link itself if you want: rm {paths.root}")
    if not _real_dir(paths.root):
        raise UserError("is not a folder", where=where, fix="pass a run id from 'carexpert runs list'")
    if not is_run_folder(paths):
        raise UserError(f"is not a carexpert run folder (no {MARKER_NAME} marker and no status.json "
                        "written by carexpert)", where=where,
                        fix="run commands act only on folders carexpert created; see 'carexpert runs list'")
    return paths


def list_run_paths(runs_dir: str | PathLike[str]) -> list[RunPaths]:
    """Every run folder under ``runs_dir``, newest first (links and foreign folders are left out)."""
    base = Path(runs_dir)
    if not base.is_dir():
        return []
    found = [RunPaths(p) for p in base.iterdir() if _RUN_ID.match(p.name) and is_run_folder(RunPaths(p))]
    return sorted(found, key=lambda r: (_mtime(r.status), r.run_id), reverse=True)


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
