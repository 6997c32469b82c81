"""Two training processes (DDP over gloo on the CPU) through the same launcher as --gpus N."""

from __future__ import annotations

import pytest

from carexpert.config import write_frozen_config
from carexpert.runs import RunPaths, read_events, read_status
from carexpert.runs.launch import start_training_process, worker_command
from training_support import tiny_config, write_tiny_dataset


def test_worker_command_uses_torch_distributed_for_several_processes(tmp_path):
    paths = RunPaths(tmp_path / "r")
    single = worker_command(paths, lock_fd=5)
    assert single[1:3] == ["-m", "carexpert.training.worker"] and single[-2:] == ["--lock-fd", "5"]
    multi = worker_command(paths, resume=True, processes=4, lock_fd=5)
    assert multi[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    assert "--resume" in multi and "--lock-inherited" in multi and "--lock-fd" not in multi


@pytest.mark.slow
def test_two_process_cpu_ddp_run_completes_with_one_writer(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, write_tiny_dataset(tmp_path / "data.jsonl"), max_steps=4, save_steps=2,
                         eval_steps=2)
    paths = RunPaths(tmp_path / "runs" / "ddp")
    paths.root.mkdir(parents=True)
    write_frozen_config(paths.config, config)
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
