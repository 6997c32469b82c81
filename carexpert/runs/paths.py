"""Where everything about a run lives (the run-folder contract in docs/DESIGN)."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from carexpert.errors import UserError

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


def list_run_paths(runs_dir: str | PathLike[str]) -> list[RunPaths]:
    """Every run folder under ``runs_dir``, newest first (by folder name, which sorts by time)."""
    base = Path(runs_dir)
    if not base.is_dir():
        return []
    found = [RunPaths(p) for p in base.iterdir() if p.is_dir() and _RUN_ID.match(p.name)]
    return sorted(found, key=lambda r: (r.status.stat().st_mtime if r.status.exists() else 0, r.run_id),
                  reverse=True)
