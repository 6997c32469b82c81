"""Checkpoints you can trust: a completion marker, the config and data they belong to.

Every checkpoint folder gets ``carexpert-checkpoint.json``, written last and
atomically after the Trainer saved everything else; a folder without it was cut
short (killed mid-save, disk full) and is never resumed from. The marker records a
hash of the settings that change what training computes, those settings
themselves, and the dataset fingerprint, so a resume with a different config or
different data is refused with the exact differences (``--force`` goes on anyway):
resuming a schedule with another learning rate or other data silently trains a
model nobody asked for (axolotl#1134).

Rotation lives here too (the Trainer's own is off): the newest ``keep`` complete
checkpoints stay; incomplete folders are removed once a newer complete one exists.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.fsutil import atomic_write_json

MARKER = "carexpert-checkpoint.json"
REQUIRED_FILES = ("trainer_state.json",)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

# Settings that do not change what the optimizer computes: changing them between a
# checkpoint and its resume is harmless.
HARMLESS_SECTIONS = ("ui", "eval", "chat")
HARMLESS_KEYS = frozenset({
    "model.cache_dir", "data.data_dir", "data.skip_bad_records", "train.runs_dir", "train.eval_steps",
    "train.save_steps", "train.save_total_limit", "train.logging_steps", "train.tensorboard", "train.stall_factor",
    "train.auto_micro_batch", "train.gradient_checkpointing", "train.padding_free", "train.head_loss",
    "train.compile", "train.dist_timeout_s", "train.max_minutes",
})  # auto_micro_batch .. compile change speed and memory, not the maths; dist_timeout_s when a hang is reported


def training_settings(config: Any) -> dict[str, Any]:
    """``section.key -> value`` for every setting that changes what training computes."""
    flat = {}
    for section, body in config.to_dict().items():
        if section in HARMLESS_SECTIONS:
            continue
        for name, value in body.items():
            key = f"{section}.{name}"
            if key not in HARMLESS_KEYS:
                flat[key] = value
    return flat


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_step(path: Path) -> int | None:
    found = _CHECKPOINT.match(path.name)
    return int(found.group(1)) if found else None


def write_marker(checkpoint: Path, *, config: Any, fingerprint: str, step: int, plan: dict[str, Any]) -> Path:
    """Mark ``checkpoint`` complete (call only after everything else in it is written)."""
    settings = training_settings(config)
    return atomic_write_json(checkpoint / MARKER, {
        "step": step, "time": time.time(), "settings_hash": settings_hash(settings), "settings": settings,
        "dataset_fingerprint": fingerprint, "plan": plan})


def read_marker(checkpoint: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((checkpoint / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(checkpoint: Path) -> bool:
    return read_marker(checkpoint) is not None and all((checkpoint / f).is_file() for f in REQUIRED_FILES)


def checkpoints_newest_first(checkpoints_dir: Path) -> list[Path]:
    if not checkpoints_dir.is_dir():
        return []
    found = [p for p in checkpoints_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0, reverse=True)


def last_complete_checkpoint(checkpoints_dir: Path) -> tuple[Path | None, list[Path]]:
    """The newest complete checkpoint and the incomplete ones newer than it (skipped)."""
    skipped = []
    for path in checkpoints_newest_first(checkpoints_dir):
        if is_complete(path):
            return path, skipped
        skipped.append(path)
    return None, skipped


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


def differences(marker: dict[str, Any], config: Any, fingerprint: str, optimizer: str | None = None) -> list[str]:
    """Human lines saying what changed since the checkpoint (empty when nothing did).

    ``optimizer`` is the one this machine will use (the CPU falls back from 8-bit AdamW):
    its state in the checkpoint only loads into the same optimizer.
    """
    before = marker.get("settings") or {}
    now = training_settings(config)
    lines = [f"{key}: {before.get(key, '(unset)')!r} at the checkpoint, {now.get(key, '(unset)')!r} now"
             for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]
    if marker.get("dataset_fingerprint") != fingerprint:
        lines.append(f"dataset fingerprint: {marker.get('dataset_fingerprint')} at the checkpoint, {fingerprint} now "
                     "(the training data changed)")
    saved_optimizer = (marker.get("plan") or {}).get("optimizer")
    if optimizer and saved_optimizer and saved_optimizer != optimizer:
        lines.append(f"optimizer in use: {saved_optimizer} at the checkpoint, {optimizer} on this machine "
                     "(its saved state cannot be loaded; resume where the checkpoint was made)")
    return lines


def check_resume(checkpoint: Path, config: Any, fingerprint: str, *, force: bool,
                 optimizer: str | None = None) -> list[str]:
    """Refuse (UserError) when the config or data changed since ``checkpoint``; with ``force``, return the changes."""
    marker = read_marker(checkpoint) or {}
    changed = differences(marker, config, fingerprint, optimizer)
    if changed and not force:
        raise UserError(f"the config or the data changed since {checkpoint.name}", where=str(checkpoint.parent.parent),
                        details=changed,
                        fix="put the settings back, start a new run, or pass --force to resume anyway")
    return changed
