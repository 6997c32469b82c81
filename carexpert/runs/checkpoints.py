"""A run's checkpoints on disk: which folders there are, which are complete, and tidying them.

Every checkpoint folder (``checkpoints/checkpoint-<step>``) gets ``carexpert-checkpoint.json``,
written last and atomically after the Trainer saved everything else; a folder without it was
cut short (killed mid-save, disk full) and is never resumed from. This module owns that layout:
the CLI (``runs show``), evaluation (what data the run trained on), the app's recovery and the
trainer all ask here. What goes *into* the marker, and whether a resume may use it, is the
training side's policy (``carexpert.training.guard``).

Rotation lives here too (the Trainer's own is off): the newest ``keep`` complete checkpoints
stay; incomplete folders are removed once a newer complete one exists.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from carexpert.fsutil import atomic_write_json
from carexpert.runs.paths import RunPaths

MARKER = "carexpert-checkpoint.json"
REQUIRED_FILES = ("trainer_state.json",)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: Path) -> int | None:
    """The step in a ``checkpoint-<step>`` folder name (None for any other name)."""
    found = _CHECKPOINT.match(path.name)
    return int(found.group(1)) if found else None


def write_marker(checkpoint: Path, marker: dict[str, Any]) -> Path:
    """Mark ``checkpoint`` complete with ``marker`` (call only after everything else in it is written)."""
    return atomic_write_json(checkpoint / MARKER, marker)


def read_marker(checkpoint: Path) -> dict[str, Any] | None:
    """The checkpoint's completion marker, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((checkpoint / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(checkpoint: Path) -> bool:
    return read_marker(checkpoint) is not None and all((checkpoint / f).is_file() for f in REQUIRED_FILES)


def checkpoints_newest_first(checkpoints_dir: Path) -> list[Path]:
    """Every ``checkpoint-<step>`` folder, complete or not, highest step first."""
    if not checkpoints_dir.is_dir():
        return []
    found = [p for p in checkpoints_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0, reverse=True)


def last_complete_checkpoint(checkpoints_dir: Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint and the incomplete ones newer than it (skipped)."""
    skipped: list[Path] = []
    for path in checkpoints_newest_first(checkpoints_dir):
        if is_complete(path):
            return path, skipped
        skipped.append(path)
    return None, skipped


def trained_fingerprint(run: RunPaths) -> str | None:
    """The dataset fingerprint the run trained on, from its newest checkpoint marker that records one."""
    for checkpoint in checkpoints_newest_first(run.checkpoints):
        marker = read_marker(checkpoint)
        if marker and marker.get("dataset_fingerprint"):
            return str(marker["dataset_fingerprint"])
    return None


def rotate(checkpoints_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints, and incomplete ones older than the newest."""
    removed = []
    complete_seen = 0
    for path in checkpoints_newest_first(checkpoints_dir):
        if is_complete(path):
            complete_seen += 1
            if complete_seen <= keep:
                continue
        elif complete_seen == 0:
            continue  # maybe being written right now
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def discard_incomplete(checkpoints_dir: Path) -> list[Path]:
    """Remove every checkpoint folder without its marker (call only when no save is running)."""
    removed = [path for path in checkpoints_newest_first(checkpoints_dir) if not is_complete(path)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
