"""Start a new run or resume one as its own process (the CLI and the app both use this).

Everything that can be refused is refused here, before a process starts, so the
person typing gets the answer at once: an existing run id, a missing model, a bad
dataset, a run that is still live (its lock is held), a resume whose config or data
changed since its last checkpoint. The training process checks the resume guard again itself.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.runs import checkpoints
from carexpert.runs.control import RunInfo
from carexpert.runs.launch import start_training_process
from carexpert.runs.paths import RunPaths, new_run_id, validate_run_id
from carexpert.training import guard
from carexpert.training.data import data_fingerprint


@dataclass
class StartedRun:
    paths: RunPaths
    process: subprocess.Popen
    resumed_from: int | None = None
    changes: list[str] | None = None


def start_new_run(config: Config, *, run_id: str | None = None, processes: int = 1) -> StartedRun:
    """Create ``runs/<id>/`` with the frozen config and start its trainer."""
    from carexpert.config import write_frozen_config

    paths = RunPaths.of(config.train.runs_dir, validate_run_id(run_id) if run_id else new_run_id())
    if paths.exists() and any(paths.root.iterdir()):
        raise UserError(f"run {paths.run_id} already exists", where=str(paths.root),
                        fix=f"continue it with --resume {paths.run_id}, or pick another --run-id")
    _preflight(config)
    paths.root.mkdir(parents=True, exist_ok=True)
    write_frozen_config(paths.config, config)
    process = start_training_process(paths, processes=processes)
    return StartedRun(paths, process)


def resume_run(info: RunInfo, *, config_path: str | os.PathLike | None = None, force: bool = False,
               processes: int = 1) -> StartedRun:
    """Continue a stopped, failed or dead run from its newest complete checkpoint.

    ``config_path``: a changed config to resume with (refused unless ``force`` when it
    changes what training computes); default: the run's own frozen config.
    """
    from carexpert.config import load_config

    if info.live:
        raise UserError(f"run {info.run_id} is still {info.state} (pid {info.status.pid if info.status else '?'})",
                        fix=f"watch it with 'carexpert runs watch {info.run_id}' or stop it first")
    if info.state == "finished" and not force:
        raise UserError(f"run {info.run_id} already finished", fix="start a new run, or pass --force to train on")
    config = load_config(config_path or info.paths.config)
    fingerprint = _preflight(config)
    checkpoint, _ = checkpoints.last_complete_checkpoint(info.paths.checkpoints)
    changes = None
    if checkpoint is not None:
        changes = guard.check_resume(checkpoint, config, fingerprint, force=force)
    process = start_training_process(info.paths, config_path=config_path, resume=True, force=force,
                                     processes=processes, lock_wait_seconds=10.0)
    return StartedRun(info.paths, process, checkpoints.checkpoint_step(checkpoint) if checkpoint else None, changes)


def _preflight(config: Config) -> str:
    """Refuse a missing model or a bad dataset now, not minutes later in the background; the data fingerprint."""
    from carexpert.modeling import resolve_model

    resolve_model(config.model)
    return data_fingerprint(config)  # builds the splits, validating every record
