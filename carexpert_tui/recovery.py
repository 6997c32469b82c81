"""One-key recovery after an out-of-memory failure: apply the trainer's advice, then resume.

The trainer writes ``advice`` items ``{text, changes}`` into the failed run's status
(``carexpert.training.advice``). Applying one sets its ``changes`` in the user's config
file (``update_user_file``: comments kept, ``.bak`` made) and resumes the run with that
file. The core resumes from the newest complete checkpoint, or from step 0 in the same
run folder when none was saved; its resume guard refuses a config that changes what
training computes (a micro-batch change does), so ``--force`` is passed exactly when a
checkpoint exists and the advice touches a guarded key. Any other guarded difference
between the file and the run's frozen config stops the plan: forcing would smuggle in
changes the user did not choose here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.config import load_or_default, update_user_file
from carexpert.errors import UserError
from carexpert.runs import RunPaths
from carexpert.runs.artifacts import frozen_config
from carexpert.runs.checkpoints import checkpoint_step, last_complete_checkpoint


@dataclass(frozen=True)
class RecoveryPlan:
    """What pressing the key did to the config and how the run resumes."""

    run_id: str
    changes: dict[str, Any]
    checkpoint_step: int | None
    force: bool

    def describe(self) -> str:
        applied = ", ".join(f"{key} = {value}" for key, value in self.changes.items())
        if self.checkpoint_step is None:
            where = "from the start (no checkpoint was saved before the failure)"
        else:
            where = f"from its checkpoint at step {self.checkpoint_step}"
        forced = " with --force (the resume guard refuses these changes otherwise)" if self.force else ""
        return f"Applied {applied}; resuming {self.run_id} {where}{forced}."


def first_fix(advice: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    """The cheapest advice item that has changes a program can apply (the trainer orders them)."""
    return next((item for item in advice if isinstance(item, dict) and item.get("changes")), None)


def guarded(key: str) -> bool:
    """Whether the resume guard refuses a change of ``key`` without ``--force``."""
    from carexpert.training.guard import HARMLESS_KEYS, HARMLESS_SECTIONS

    return key.split(".", 1)[0] not in HARMLESS_SECTIONS and key not in HARMLESS_KEYS


def flat_settings(config: Any) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, body in dataclasses.asdict(config).items()
            if isinstance(body, dict) for key, value in body.items()}


def other_differences(config_path: Path, run: RunPaths, changes: dict[str, Any]) -> list[str]:
    """Guarded settings in which the file differs from the run's frozen config, beyond ``changes``."""
    frozen = frozen_config(run)
    if frozen is None:
        raise UserError(f"run {run.run_id} has no frozen config to compare with", where=str(run.root),
                        fix=f"resume from the CLI: carexpert train --resume {run.run_id}")
    mine, theirs = flat_settings(load_or_default(config_path)), flat_settings(frozen)
    return sorted(key for key in set(mine) | set(theirs)
                  if key not in changes and guarded(key) and mine.get(key) != theirs.get(key))


def apply_fix(config_path: Path, run: RunPaths, item: dict[str, Any]) -> RecoveryPlan:
    """Check the plan, then write the changes into ``config_path``; raises ``UserError`` when unsafe."""
    changes = dict(item["changes"])
    others = other_differences(config_path, run, changes)
    if others:
        raise UserError(f"{config_path} differs from run {run.run_id} in more than the advice: {', '.join(others[:6])}",
                        where=str(config_path),
                        fix=f"set those back, or resume from the CLI: carexpert train --resume {run.run_id} --force")
    checkpoint, _ = last_complete_checkpoint(run.checkpoints)
    update_user_file(config_path, changes)
    step = checkpoint_step(checkpoint) if checkpoint is not None else None
    force = checkpoint is not None and any(guarded(key) for key in changes)
    return RecoveryPlan(run.run_id, changes, step, force)
