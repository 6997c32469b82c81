"""Find, inspect, stop and delete runs (``carexpert runs ...`` and the app use these).

A run's state comes from its ``status.json`` checked against reality: a live state
("pending", "running", "stopping") whose process is gone, or whose folder lock is
free, is ``dead`` — killed hard or lost with the machine — and can be resumed from
its last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from carexpert.errors import UserError
from carexpert.runs.lock import lock_is_held
from carexpert.runs.paths import RunPaths, list_run_paths, validate_run_id
from carexpert.runs.status import LIVE_STATES, RunStatus, effective_state, read_status


@dataclass
class RunInfo:
    """A run folder with its status and the state to show."""

    paths: RunPaths
    status: RunStatus | None
    state: str

    @property
    def run_id(self) -> str:
        return self.paths.run_id

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


def run_state(paths: RunPaths, status: RunStatus | None = None) -> str:
    """``status.state``, or ``dead`` when a live state has no process (or no lock) behind it."""
    status = status if status is not None else read_status(paths.status)
    state = effective_state(status)
    on_this_host = status is not None and status.host == socket.gethostname()
    if state in LIVE_STATES and on_this_host and not lock_is_held(paths.lock):
        return "dead"
    return state


def run_info(paths: RunPaths) -> RunInfo:
    status = read_status(paths.status)
    return RunInfo(paths, status, run_state(paths, status))


def list_runs(runs_dir: str | os.PathLike) -> list[RunInfo]:
    """Every run under ``runs_dir``, most recently updated first."""
    return [run_info(paths) for paths in list_run_paths(runs_dir)]


def find_run(runs_dir: str | os.PathLike, run: str) -> RunInfo:
    """A run by id under ``runs_dir``, or by the path of its folder; UserError when missing."""
    if "/" in run:
        candidate = Path(run).expanduser()
        if not (candidate / "config.toml").is_file():
            raise UserError("not a run folder (no config.toml)", where=run,
                            fix="pass a run id from 'carexpert runs list' or the path of a run folder")
        return run_info(RunPaths(candidate))
    paths = RunPaths.of(runs_dir, validate_run_id(run))
    if not paths.exists():
        known = [info.run_id for info in list_runs(runs_dir)[:5]]
        hint = f"recent runs: {', '.join(known)}" if known else f"there are no runs in {runs_dir}"
        raise UserError(f"no run {run!r}", where=str(runs_dir), fix=f"'carexpert runs list' shows them ({hint})")
    return run_info(paths)


def stop_run(info: RunInfo) -> int:
    """Ask a live run to stop (SIGTERM: it saves a checkpoint at the next step and exits); returns its pid."""
    if not info.live or info.status is None or not info.status.pid:
        raise UserError(f"run {info.run_id} is not running (state: {info.state})",
                        fix="'carexpert runs resume' continues a stopped or dead run")
    if info.status.host != socket.gethostname():
        raise UserError(f"run {info.run_id} runs on host {info.status.host}, not here",
                        fix=f"run 'carexpert runs stop {info.run_id}' on {info.status.host}")
    try:
        os.kill(info.status.pid, signal.SIGTERM)
    except ProcessLookupError:
        raise UserError(f"run {info.run_id} has no process any more (it died)",
                        fix="'carexpert runs resume' continues it from its last checkpoint") from None
    return info.status.pid


def delete_run(info: RunInfo, *, yes: bool) -> None:
    """Remove a run folder; refuses a live run, and needs ``yes`` (the CLI's ``--yes``)."""
    if info.live:
        raise UserError(f"run {info.run_id} is {info.state}; it cannot be deleted while it trains",
                        fix=f"stop it first: carexpert runs stop {info.run_id}")
    if not yes:
        raise UserError(f"deleting run {info.run_id} removes its checkpoints, adapter and logs",
                        fix=f"confirm with: carexpert runs delete {info.run_id} --yes")
    shutil.rmtree(info.paths.root)
