"""Find, inspect, stop and delete runs (``carexpert runs ...`` and the app use these).

A run's state comes from its ``status.json`` checked against reality: a live state
("pending", "running", "stopping") whose process is gone, or whose folder lock is
free, is ``dead`` — killed hard or lost with the machine — and can be resumed from
its last checkpoint.

Every run these commands act on is confined: a path given on the command line must
name a folder directly inside ``train.runs_dir``, and the folder must be a real run
folder (``carexpert.runs.paths.check_run_folder``). A signal goes only to a process
the run's lock proves is its trainer (``carexpert.runs.lock.lock_problem``), sent
through a pidfd where the system has them so a pid reused in between cannot be hit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from carexpert.errors import UserError
from carexpert.runs.lock import lock_is_held, lock_problem
from carexpert.runs.paths import RunPaths, check_run_folder, list_run_paths, validate_run_id
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


def find_run(runs_dir: str | os.PathLike, run: str, *, marked: bool = True) -> RunInfo:
    """A run by id under ``runs_dir``, or by the path of its folder inside ``runs_dir``; UserError otherwise.

    ``marked=False`` is for commands that only read (``eval show``, ``compare``): the folder
    must still be a real folder inside ``runs_dir``, but need not carry the run marker.
    """
    if "/" in run:
        candidate = Path(run).expanduser()
        try:
            inside = candidate.parent.resolve(strict=True) == Path(runs_dir).expanduser().resolve(strict=True)
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise UserError(f"is not a folder inside the runs folder ({runs_dir})", where=run,
                            fix="pass a run id from 'carexpert runs list'; run commands act only on folders "
                                "inside train.runs_dir")
        run = candidate.name
    paths = RunPaths.of(runs_dir, validate_run_id(run))
    if os.path.islink(paths.root):
        check_run_folder(paths)  # says it is a link, which is never followed
    if not paths.exists():
        known = [info.run_id for info in list_runs(runs_dir)[:5]]
        hint = f"recent runs: {', '.join(known)}" if known else f"there are no runs in {runs_dir}"
        raise UserError(f"no run {run!r}", where=str(runs_dir), fix=f"'carexpert runs list' shows them ({hint})")
    return run_info(check_run_folder(paths) if marked else paths)


def stop_run(info: RunInfo) -> int:
    """Ask a live run to stop (SIGTERM: it saves a checkpoint at the next step and exits); returns its pid."""
    if not info.live or info.status is None or not info.status.pid:
        raise UserError(f"run {info.run_id} is not running (state: {info.state})",
                        fix="'carexpert runs resume' continues a stopped or dead run")
    if info.status.host != socket.gethostname():
        raise UserError(f"run {info.run_id} runs on host {info.status.host}, not here",
                        fix=f"run 'carexpert runs stop {info.run_id}' on {info.status.host}")
    pid = info.status.pid
    try:
        with _pinned(pid) as pidfd:
            problem = lock_problem(info.paths.lock, pid)
            if problem:
                raise UserError(f"run {info.run_id} cannot be stopped safely: {problem}, so carexpert cannot prove "
                                f"that pid {pid} is its trainer and sends no signal", where=str(info.paths.root),
                                fix=f"if it still trains, check 'ps -p {pid} -o pid,lstart,args' and stop it "
                                    f"yourself; otherwise it is dead: 'carexpert runs resume {info.run_id}' "
                                    "continues it")
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise UserError(f"run {info.run_id} has no process any more (it died)",
                        fix="'carexpert runs resume' continues it from its last checkpoint") from None
    return pid


@contextlib.contextmanager
def _pinned(pid: int) -> Iterator[int | None]:
    """A pidfd for ``pid`` (Linux 5.3+): checks made after opening it and the signal sent through it
    name the same process, so a pid reused in between cannot be hit. None where there are no pidfds."""
    try:
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except ProcessLookupError:
        raise
    except OSError:
        pidfd = None
    try:
        yield pidfd
    finally:
        if pidfd is not None:
            os.close(pidfd)


def delete_run(info: RunInfo, *, yes: bool) -> None:
    """Remove a run folder; refuses a live run, and needs ``yes`` (the CLI's ``--yes``)."""
    if info.live:
        raise UserError(f"run {info.run_id} is {info.state}; it cannot be deleted while it trains",
                        fix=f"stop it first: carexpert runs stop {info.run_id}")
    if not yes:
        raise UserError(f"deleting run {info.run_id} removes its checkpoints, adapter and logs",
                        fix=f"confirm with: carexpert runs delete {info.run_id} --yes")
    check_run_folder(info.paths)  # again, right before: never a link, never a foreign folder
    shutil.rmtree(info.paths.root)
