"""A run as its own process, driven through the CLI: detach, watch, stop, resume, lock, delete."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from training_support import tiny_config, wait_for, write_tiny_dataset

from carexpert.config import config_to_toml
from carexpert.runs import RunPaths, read_events, read_status
from carexpert.runs.control import run_state

pytestmark = pytest.mark.slow


def carexpert(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "carexpert.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def has_checkpoint(paths: RunPaths) -> bool:
    return paths.events.exists() and any(e["type"] == "checkpoint" for e in read_events(paths.events))


def test_detach_watch_stop_resume_through_the_cli(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, write_tiny_dataset(tmp_path / "data.jsonl"), max_steps=100, save_steps=3,
                         eval_steps=0)
    config.train.runs_dir = str(tmp_path / "runs")
    config_file = tmp_path / "carexpert.toml"
    config_file.write_text(config_to_toml(config))
    paths = RunPaths(tmp_path / "runs" / "d1")

    started = carexpert("train", "-c", str(config_file), "--run-id", "d1", "--detach", timeout=60)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip().splitlines()[-1] == "d1"  # the run id, last and alone
    status = read_status(paths.status)
    assert status.state in ("pending", "running") and run_state(paths) in ("pending", "running")
    assert os.getsid(status.pid) != os.getsid(0)  # its own session: a closed terminal does not reach it

    wait_for(lambda: has_checkpoint(paths), what="the first checkpoint")
    stopped = carexpert("runs", "stop", "-c", str(config_file), "d1", "--wait")
    assert stopped.returncode == 0, stopped.stderr
    status = read_status(paths.status)
    assert status.state == "stopped" and 3 <= status.step < 100
    assert (paths.checkpoints / f"checkpoint-{status.step}" / "carexpert-checkpoint.json").is_file()

    resumed = carexpert("runs", "resume", "-c", str(config_file), "d1", "--detach", timeout=60)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert f"resuming d1 from step {status.step}" in resumed.stdout
    again = carexpert("runs", "resume", "-c", str(config_file), "d1", timeout=60)
    assert again.returncode == 2 and "still" in again.stderr  # one trainer per run
    refused = carexpert("runs", "delete", "-c", str(config_file), "d1", "--yes", timeout=60)
    assert refused.returncode == 2 and "cannot be deleted while it trains" in refused.stderr

    watched = carexpert("runs", "watch", "-c", str(config_file), "d1")
    assert watched.returncode == 0 and "finished at step 100" in watched.stdout, watched.stdout + watched.stderr
    assert read_status(paths.status).state == "finished"
    steps = [e["step"] for e in read_events(paths.events) if e["type"] == "step"]
    assert steps[-1] == 100 and sorted(set(steps)) == list(range(1, 101))  # no step lost, none skipped
    listed = carexpert("runs", "list", "-c", str(config_file), timeout=60)
    assert "d1" in listed.stdout and "finished" in listed.stdout

    unconfirmed = carexpert("runs", "delete", "-c", str(config_file), "d1", timeout=60)
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr and paths.exists()
    assert carexpert("runs", "delete", "-c", str(config_file), "d1", "--yes", timeout=60).returncode == 0
    assert not paths.exists()


def test_train_refuses_a_bad_dataset_or_model_before_starting_anything(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, tmp_path / "nowhere.jsonl")
    config.train.runs_dir = str(tmp_path / "runs")
    config_file = tmp_path / "carexpert.toml"
    config_file.write_text(config_to_toml(config))
    result = carexpert("train", "-c", str(config_file), "--detach", timeout=60)
    assert result.returncode == 2 and "nowhere.jsonl" in result.stderr and "Traceback" not in result.stderr

    config.data.dataset = str(write_tiny_dataset(tmp_path / "data.jsonl"))
    config.model.base_model = str(tmp_path / "no-such-model")
    config_file.write_text(config_to_toml(config))
    result = carexpert("train", "-c", str(config_file), "--detach", timeout=60)
    assert result.returncode == 2 and "no-such-model" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
