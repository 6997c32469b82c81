"""One row per run folder: what the runs list, the header and the quit prompt show.

Built from the run folder alone, read through ``carexpert.runs`` (status, lock, adapter,
results, the events' tail), so runs
started from the CLI, by another viewer, or before the app opened all appear. A run's
trainer is always another process: a live run, or one whose lock some process holds,
is *attached*: the app watches it read-only and never starts a second trainer on it.
A live run whose newest progress event is ``stalled`` is flagged as stalled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.runs import LIVE_STATES, RunPaths, list_run_paths, read_status
from carexpert.runs.artifacts import eval_results, has_adapter
from carexpert.runs.control import run_state
from carexpert.runs.events import stalled_now
from carexpert.runs.lock import lock_is_held, read_holder


@dataclass(frozen=True)
class RunRow:
    run_id: str
    root: Path
    state: str
    step: int
    max_steps: int | None
    epoch: float
    error: str | None
    has_adapter: bool
    eval_results: tuple[str, ...]
    advice: tuple[dict[str, Any], ...] = ()
    stalled: bool = False
    owner_pid: int | None = None
    """The trainer that drives the run: its live pid, or the holder of its lock."""
    locked: bool = False

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def attached(self) -> bool:
        """Another process drives this run: watch only, never resume or start a trainer on it."""
        return self.live or self.locked

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.root)

    def progress_text(self) -> str:
        total = f"/{self.max_steps}" if self.max_steps else ""
        return f"{self.step}{total}"


def eval_result_folders(paths: RunPaths) -> tuple[str, ...]:
    """Names of the run's complete ``eval/<timestamp>`` results, newest first."""
    return tuple(folder.name for folder in eval_results(paths))


def lock_holder(paths: RunPaths) -> tuple[bool, int | None]:
    """Whether some process holds the run's lock, and its pid as the lock file records it."""
    if not lock_is_held(paths.lock):
        return False, None
    return True, read_holder(paths.lock)[0]


def scan_runs(runs_dir: str | Path) -> list[RunRow]:
    """Every run under ``runs_dir``, newest first."""
    rows = []
    for paths in list_run_paths(runs_dir):
        status = read_status(paths.status)
        state = run_state(paths, status)  # the same verdict as 'carexpert runs list'
        live = state in LIVE_STATES
        locked, holder = lock_holder(paths)
        rows.append(RunRow(
            run_id=paths.run_id,
            root=paths.root,
            state=state,
            step=status.step if status else 0,
            max_steps=status.max_steps if status else None,
            epoch=status.epoch if status else 0.0,
            error=status.error if status else None,
            has_adapter=has_adapter(paths),
            eval_results=eval_result_folders(paths),
            advice=tuple(status.advice or ()) if status else (),
            stalled=live and stalled_now(paths.events),
            owner_pid=(status.pid if live and status else None) or holder,
            locked=locked,
        ))
    return rows
