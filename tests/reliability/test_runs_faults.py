"""Runs survive what kills them: SIGKILL (power loss) and a full disk lose at most save_steps."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from training_support import tiny_config, wait_for, write_tiny_dataset

from carexpert.config import write_frozen_config
from carexpert.runs import (
    RunPaths,
    checkpoints,
    read_events,
    read_status,
)
from carexpert.runs.control import run_state
from carexpert.runs.launch import start_training_process
from carexpert.training import run


@pytest.mark.slow
def test_sigkill_shows_dead_and_resume_loses_at_most_save_steps(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, write_tiny_dataset(tmp_path / "data.jsonl"), max_steps=30, save_steps=3,
                         eval_steps=0)
    config.train.runs_dir = str(tmp_path / "runs")
    paths = RunPaths(tmp_path / "runs" / "k1")
    paths.root.mkdir(parents=True)
    write_frozen_config(paths.config, config)
    child = start_training_process(paths)

    def checkpointed() -> bool:
        return paths.events.exists() and any(e["type"] == "checkpoint" for e in read_events(paths.events))

    wait_for(checkpointed, what="a checkpoint")
    os.kill(read_status(paths.status).pid, signal.SIGKILL)
    child.wait(timeout=30)
    killed_at = max(e["step"] for e in read_events(paths.events) if e["type"] == "step")
    assert read_status(paths.status).state in ("running", "stopping")  # it never got to say goodbye
    assert run_state(paths) == "dead"
    (tmp_path / "carexpert.toml").write_text(f'[train]\nruns_dir = "{paths.root.parent}"\n')
    listed = subprocess.run([sys.executable, "-m", "carexpert.cli.main", "runs", "list"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert "k1" in listed.stdout and "dead" in listed.stdout

    outcome = run(config, paths, resume=True)
    assert outcome.state == "finished" and outcome.step == 30
    resumed_from = [e["resumed_from"] for e in read_events(paths.events) if e["type"] == "start"][-1]
    assert resumed_from is not None and killed_at - resumed_from <= config.train.save_steps


def test_disk_full_while_saving_keeps_earlier_checkpoints(tiny_model_dir, tmp_path, monkeypatch):
    import torch

    config = tiny_config(tiny_model_dir, write_tiny_dataset(tmp_path / "data.jsonl"), max_steps=6, save_steps=2,
                         eval_steps=0)
    paths = RunPaths(tmp_path / "full")
    real_save = torch.save

    def save(obj, target, *args, **kwargs):
        if "checkpoint-4" in str(target):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_save(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    outcome = run(config, paths)
    assert outcome.state == "failed" and outcome.error.startswith("disk full while writing at step 4")
    assert "earlier checkpoints are intact" in outcome.error
    assert read_status(paths.status).state == "failed"
    assert checkpoints.is_complete(paths.checkpoints / "checkpoint-2")
    assert not (paths.checkpoints / "checkpoint-4").exists()  # the half-written one is gone (space back)

    monkeypatch.setattr(torch, "save", real_save)
    resumed = run(config, paths, resume=True)
    assert resumed.state == "finished"
    assert [e["resumed_from"] for e in read_events(paths.events) if e["type"] == "start"] == [None, 2]
