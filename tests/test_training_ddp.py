"""Two training processes (DDP over gloo on the CPU) through the same launcher as --gpus N."""

from __future__ import annotations

import pytest
from training_support import tiny_config, wait_for, write_tiny_dataset

from carexpert.config import write_frozen_config
from carexpert.runs import RunPaths, read_events, read_status
from carexpert.runs.control import run_info, run_state, stop_run
from carexpert.runs.launch import start_training_process, worker_command
from carexpert.runs.status import RunStatus
from carexpert.training.faults import ENV


def test_worker_command_uses_the_supervisor_for_several_processes(tmp_path):
    paths = RunPaths(tmp_path / "r")
    single = worker_command(paths, lock_fd=5)
    assert single[1:3] == ["-m", "carexpert.training.worker"] and single[-2:] == ["--lock-fd", "5"]
    multi = worker_command(paths, resume=True, processes=4, lock_fd=5)
    assert multi[1:4] == ["-m", "carexpert.training.supervisor", "--processes=4"]
    assert "--resume" in multi and multi[-2:] == ["--lock-fd", "5"]  # the supervisor adopts the lock


def _ddp_run(tiny_model_dir, tmp_path, **train) -> RunPaths:
    config = tiny_config(tiny_model_dir, write_tiny_dataset(tmp_path / "data.jsonl"), **train)
    paths = RunPaths(tmp_path / "runs" / "ddp")
    paths.root.mkdir(parents=True)
    write_frozen_config(paths.config, config)
    return paths


@pytest.mark.slow
def test_two_process_cpu_ddp_run_completes_with_one_writer(tiny_model_dir, tmp_path):
    paths = _ddp_run(tiny_model_dir, tmp_path, max_steps=4, save_steps=2, eval_steps=2)
    child = start_training_process(paths, processes=2)
    assert child.wait(timeout=400) == 0, paths.log.read_text()[-3000:]

    events = read_events(paths.events)
    starts = [e for e in events if e["type"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # rank 0 alone writes events
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3, 4]
    summary = next(e for e in events if e["type"] == "summary")
    assert summary["plan"]["world_size"] == 2
    assert [e["state"] for e in events if e["type"] == "status"] == ["pending", "running", "finished"]
    assert read_status(paths.status).state == "finished"
    assert (paths.adapter / "adapter_model.safetensors").is_file()
    assert (paths.checkpoints / "checkpoint-4" / "rng_state_1.pth").is_file()  # rank 1 saved its RNG too
    assert not (paths.root / "ranks").exists()  # no rank recorded a failure


@pytest.mark.slow
def test_a_rank_that_raises_fails_the_run_with_its_message(tiny_model_dir, tmp_path, monkeypatch):
    paths = _ddp_run(tiny_model_dir, tmp_path, max_steps=3, save_steps=100, eval_steps=0)
    monkeypatch.setenv(ENV, "rank=1,step=2,mode=raise")
    child = start_training_process(paths, processes=2)
    assert child.wait(timeout=120) == 1, paths.log.read_text()[-3000:]

    status = read_status(paths.status)
    assert status.state == "failed" and run_state(paths) == "failed"  # the lock went with the supervisor
    assert status.error.startswith("rank 1 of 2 failed at step 2: InjectedFault: CAREXPERT_FAULT: rank 1 fails "
                                   "at step 2 on purpose"), status.error
    events = read_events(paths.events)
    assert [e["state"] for e in events if e["type"] == "status"] == ["pending", "running", "failed"]
    assert events[-1]["error"] == status.error  # one final status, from the supervisor


@pytest.mark.slow
def test_a_rank_that_hangs_is_ended_by_the_collective_timeout(tiny_model_dir, tmp_path, monkeypatch):
    paths = _ddp_run(tiny_model_dir, tmp_path, max_steps=3, save_steps=100, eval_steps=0, dist_timeout_s=3)
    monkeypatch.setenv(ENV, "rank=1,step=1,mode=hang")
    child = start_training_process(paths, processes=2)
    assert child.wait(timeout=120) == 1, paths.log.read_text()[-3000:]

    status = read_status(paths.status)
    assert status.state == "failed", status
    assert status.error.startswith("rank 1 of 2 stopped answering (hung) after step 1: the collective of rank 0 "
                                   "timed out — RuntimeError: "), status.error
    assert "Timed out waiting 3000ms" in status.error
    assert status.error.endswith("; rank 1 was killed 5 s after the first failure, still not answering")


@pytest.mark.slow
def test_stopping_a_two_rank_run_checkpoints_and_ends_it_stopped(tiny_model_dir, tmp_path):
    paths = _ddp_run(tiny_model_dir, tmp_path, max_steps=200, save_steps=1000, eval_steps=0)
    child = start_training_process(paths, processes=2)
    wait_for(lambda: (read_status(paths.status) or RunStatus()).step >= 1 or child.poll() is not None,
             timeout=120, what="the first step")
    stop_run(run_info(paths))  # SIGTERM to the pid in status.json: rank 0, which stops every rank
    assert child.wait(timeout=120) == 0, paths.log.read_text()[-3000:]
    status = read_status(paths.status)
    assert status.state == "stopped" and run_state(paths) == "stopped"
    assert (paths.checkpoints / f"checkpoint-{status.step}" / "carexpert-checkpoint.json").is_file()
    assert [e["state"] for e in read_events(paths.events) if e["type"] == "status"][-2:] == ["stopping", "stopped"]
