"""One row per run folder: what the runs list, the header and the quit prompt show.

Built from the run folder alone (status.json + the pid check in the core), so runs
started from the CLI, by another viewer, or before the app opened all appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carexpert.runs import LIVE_STATES, RunPaths, effective_state, list_run_paths, read_status


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

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.root)

    def progress_text(self) -> str:
        total = f"/{self.max_steps}" if self.max_steps else ""
        return f"{self.step}{total}"


def eval_result_folders(paths: RunPaths) -> tuple[str, ...]:
    """Names of ``eval/<timestamp>`` folders that hold a summary.json, newest first."""
    if not paths.eval.is_dir():
        return ()
    found = [p.name for p in paths.eval.iterdir() if (p / "summary.json").is_file()]
    return tuple(sorted(found, reverse=True))


def scan_runs(runs_dir: str | Path) -> list[RunRow]:
    """Every run under ``runs_dir``, newest first."""
    rows = []
    for paths in list_run_paths(runs_dir):
        status = read_status(paths.status)
        rows.append(RunRow(
            run_id=paths.run_id,
            root=paths.root,
            state=effective_state(status),
            step=status.step if status else 0,
            max_steps=status.max_steps if status else None,
            epoch=status.epoch if status else 0.0,
            error=status.error if status else None,
            has_adapter=(paths.adapter / "adapter_config.json").is_file(),
            eval_results=eval_result_folders(paths),
        ))
    return rows
