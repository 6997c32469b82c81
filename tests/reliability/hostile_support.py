"""Helpers for the hostile-input regression tests: run the CLI in-process, make run folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from carexpert.cli.main import main
from carexpert.runs import RunPaths, RunStatus, write_status
from carexpert.runs.paths import mark_run_folder

REPO = Path(__file__).resolve().parents[2]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``carexpert ARGV`` run in this process."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_process(*argv: str, cwd: Path, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """``carexpert ARGV`` as its own process (for hangs, closed descriptors and signals)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "carexpert.cli.main", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def project(tmp_path: Path, extra: str = "") -> Path:
    """A config whose runs folder is ``tmp_path/runs``; returns the config path."""
    (tmp_path / "runs").mkdir(parents=True, exist_ok=True)
    config = tmp_path / "carexpert.toml"
    config.write_text(f'[train]\nruns_dir = "{tmp_path / "runs"}"\n{extra}', encoding="utf-8")
    return config


def make_run(runs_dir: Path, run_id: str, state: str = "stopped", pid: int | None = None, **fields) -> RunPaths:
    """A run folder as carexpert leaves it: marker, frozen config, status."""
    paths = RunPaths(runs_dir / run_id)
    paths.root.mkdir(parents=True)
    mark_run_folder(paths)
    paths.config.write_text("", encoding="utf-8")
    write_status(paths.status, RunStatus(state=state, pid=pid if pid is not None else os.getpid(), **fields))
    return paths
