"""The resume policy: which config and data a checkpoint belongs to, and when a resume may use it.

A checkpoint's completion marker (its file and the folder layout belong to
``carexpert.runs.checkpoints``) records a hash of the settings that change what
training computes, those settings themselves, and the dataset fingerprint, so a
resume with a different config or different data is refused with the exact
differences (``--force`` goes on anyway): resuming a schedule with another learning
rate or other data silently trains a model nobody asked for (axolotl#1134).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.runs import checkpoints

# Settings that do not change what the optimizer computes: changing them between a
# checkpoint and its resume is harmless.
HARMLESS_SECTIONS = ("ui", "eval", "chat")
HARMLESS_KEYS = frozenset({
    "model.cache_dir", "data.data_dir", "data.skip_bad_records", "train.runs_dir", "train.eval_steps",
    "train.save_steps", "train.save_total_limit", "train.logging_steps", "train.tensorboard", "train.stall_factor",
    "train.auto_micro_batch", "train.gradient_checkpointing", "train.padding_free", "train.head_loss",
    "train.compile", "train.dist_timeout_s", "train.max_minutes",
})  # auto_micro_batch .. compile change speed and memory, not the maths; dist_timeout_s when a hang is reported


def training_settings(config: Config) -> dict[str, Any]:
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


def write_marker(checkpoint: Path, *, config: Config, fingerprint: str, step: int, plan: dict[str, Any]) -> Path:
    """Mark ``checkpoint`` complete (call only after everything else in it is written)."""
    settings = training_settings(config)
    return checkpoints.write_marker(checkpoint, {
        "step": step, "time": time.time(), "settings_hash": settings_hash(settings), "settings": settings,
        "dataset_fingerprint": fingerprint, "plan": plan})


def differences(marker: dict[str, Any], config: Config, fingerprint: str, optimizer: str | None = None) -> list[str]:
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


def check_resume(checkpoint: Path, config: Config, fingerprint: str, *, force: bool,
                 optimizer: str | None = None) -> list[str]:
    """Refuse (UserError) when the config or data changed since ``checkpoint``; with ``force``, return the changes."""
    marker = checkpoints.read_marker(checkpoint) or {}
    changed = differences(marker, config, fingerprint, optimizer)
    if changed and not force:
        raise UserError(f"the config or the data changed since {checkpoint.name}", where=str(checkpoint.parent.parent),
                        details=changed,
                        fix="put the settings back, start a new run, or pass --force to resume anyway")
    return changed
