"""Training runs in-process on the tiny model: adapter, events, determinism, stop/resume, guard, lock, OOM."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("torch")

from training_support import tiny_config, write_tiny_dataset
from transformers import TrainerCallback

from carexpert.errors import UserError
from carexpert.runs import RunPaths, read_events, read_status
from carexpert.runs.lock import RunLock, RunLockedError
from carexpert.training import run
from carexpert.training.signals import GracefulStop

STEP_FIELDS = {"step", "max_steps", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "eta_s",
               "gpus", "ram_bytes", "tokens", "train_s"}


@pytest.fixture
def dataset(tmp_path):
    return write_tiny_dataset(tmp_path / "data.jsonl")


def losses(paths: RunPaths) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_events(paths.events) if e["type"] == "step"}


class StopAt(TrainerCallback):
    """Asks the run to stop after a given step, like a SIGTERM would."""

    def __init__(self, stop: GracefulStop, step: int):
        self.stop, self.step = stop, step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.stop.request("test")


class RaiseAt(TrainerCallback):
    def __init__(self, step: int, error: BaseException):
        self.step, self.error = step, error

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise self.error


def test_full_run_writes_adapter_events_and_status(tiny_model_dir, dataset, tmp_path):
    config = tiny_config(tiny_model_dir, dataset, tensorboard=True)
    paths = RunPaths(tmp_path / "runs" / "full")
    seen = []
    outcome = run(config, paths, on_event=seen.append)

    assert outcome.state == "finished" and outcome.step == 6
    assert (paths.adapter / "adapter_model.safetensors").is_file()
    assert (paths.adapter / "adapter_config.json").is_file() and (paths.adapter / "tokenizer.json").is_file()
    assert paths.config.is_file() and paths.log.read_text().count("step 6/6") == 1
    assert any(paths.tensorboard.iterdir())
    status = read_status(paths.status)
    assert status.state == "finished" and status.step == 6 and status.max_steps == 6

    events = read_events(paths.events)
    assert [e["type"] for e in events] == [e["type"] for e in seen]  # on_event sees exactly what is written
    assert events[0]["type"] == "start" and events[0]["run_id"] == "full" and events[0]["resumed_from"] is None
    assert all(e["v"] == 1 and isinstance(e["time"], float) for e in events)
    states = [e["state"] for e in events if e["type"] == "status"]
    assert states == ["pending", "running", "finished"]
    summary = next(e for e in events if e["type"] == "summary")
    assert 0 < summary["trainable_params"] < summary["total_params"]
    assert summary["trainable_percent"] == pytest.approx(100 * summary["trainable_params"] / summary["total_params"])
    assert summary["optimizer"] == "adamw_torch"  # optimizer 'auto' on the CPU
    assert summary["plan"]["head_loss"] == "chunked" and summary["plan"]["compile"] is False
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    for event in steps:
        assert set(event) >= STEP_FIELDS, STEP_FIELDS - set(event)
        assert event["tokens_per_s"] > 0 and event["samples_per_s"] > 0 and event["gpus"] == []
        assert event["tokens_per_s"] == pytest.approx(event["tokens"] / event["train_s"])
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [3, 6] and all(e["perplexity"] > 1 for e in evals)
    checkpoints = [e for e in events if e["type"] == "checkpoint"]
    assert [e["step"] for e in checkpoints] == [3, 6]


def test_same_seed_and_config_give_the_same_first_losses(tiny_model_dir, dataset, tmp_path):
    config = tiny_config(tiny_model_dir, dataset, max_steps=3, eval_steps=0, save_steps=100)
    first, second = RunPaths(tmp_path / "a"), RunPaths(tmp_path / "b")
    run(config, first)
    run(config, second)
    assert losses(first) == pytest.approx(losses(second), abs=1e-6)
    config.train.seed = 7
    third = RunPaths(tmp_path / "c")
    run(config, third)
    assert losses(third) != pytest.approx(losses(first), abs=1e-6)


def test_stop_saves_a_checkpoint_and_resume_continues_with_the_same_data_order(tiny_model_dir, dataset, tmp_path):
    config = tiny_config(tiny_model_dir, dataset, save_steps=100, eval_steps=0)
    straight = RunPaths(tmp_path / "straight")
    run(config, straight)

    paths = RunPaths(tmp_path / "stopped")
    stop = GracefulStop()
    outcome = run(config, paths, stop=stop, callbacks=[StopAt(stop, 2)])
    assert outcome.state == "stopped" and read_status(paths.status).state == "stopped"
    assert (paths.checkpoints / "checkpoint-2" / "carexpert-checkpoint.json").is_file()
    assert not paths.adapter.exists()

    resumed = run(config, paths, resume=True)
    assert resumed.state == "finished" and resumed.step == 6
    starts = [e for e in read_events(paths.events) if e["type"] == "start"]
    assert [s["resumed_from"] for s in starts] == [None, 2]
    assert losses(paths) == pytest.approx(losses(straight), abs=1e-5)  # steps 3-6 saw the same batches


def test_resume_guard_refuses_changes_and_force_goes_on(tiny_model_dir, dataset, tmp_path):
    config = tiny_config(tiny_model_dir, dataset, save_steps=100, eval_steps=0)
    paths = RunPaths(tmp_path / "guarded")
    stop = GracefulStop()
    run(config, paths, stop=stop, callbacks=[StopAt(stop, 1)])

    config.train.learning_rate = 5e-4
    with pytest.raises(UserError) as refused:
        run(config, paths, resume=True)
    assert any("train.learning_rate" in line and "0.001" in line for line in refused.value.details)
    assert "--force" in refused.value.fix
    assert read_status(paths.status).state == "failed"

    config.train.learning_rate = 1e-3
    config.ui.theme, config.eval.limit = "other-theme", 5  # harmless keys never block a resume
    write_tiny_dataset(dataset, count=30)
    with pytest.raises(UserError) as data_changed:
        run(config, paths, resume=True)
    assert [line for line in data_changed.value.details if "dataset fingerprint" in line]
    assert not [line for line in data_changed.value.details if "ui." in line or "eval." in line]

    outcome = run(config, paths, resume=True, force=True)
    assert outcome.state == "finished"
    notices = [e["message"] for e in read_events(paths.events) if e["type"] == "notice"]
    assert any("resuming with changes (--force)" in n and "dataset fingerprint" in n for n in notices)


def test_half_written_checkpoint_is_skipped_on_resume(tiny_model_dir, dataset, tmp_path):
    config = tiny_config(tiny_model_dir, dataset, save_steps=2, eval_steps=0)
    paths = RunPaths(tmp_path / "torn")
    stop = GracefulStop()
    run(config, paths, stop=stop, callbacks=[StopAt(stop, 2)])
    torn = paths.checkpoints / "checkpoint-4"
    torn.mkdir()
    (torn / "adapter_model.safetensors").write_bytes(b"\0" * 10)  # killed mid-save: no marker
    outcome = run(config, paths, resume=True)
    assert outcome.state == "finished"
    events = read_events(paths.events)
    assert [e["resumed_from"] for e in events if e["type"] == "start"][-1] == 2
    assert any(e["type"] == "notice" and "checkpoint-4 is incomplete" in e["message"] for e in events)


def test_a_second_trainer_on_the_same_run_is_refused(tiny_model_dir, dataset, tmp_path):
    paths = RunPaths(tmp_path / "locked")
    paths.root.mkdir()
    with RunLock(paths.lock), pytest.raises(RunLockedError, match="already driving this run"):
        run(tiny_config(tiny_model_dir, dataset), paths)
    assert not paths.status.exists() and not paths.events.exists()  # the refused trainer wrote nothing


def test_out_of_memory_fails_with_advice_from_the_runs_settings(tiny_model_dir, dataset, tmp_path):
    import torch

    config = tiny_config(tiny_model_dir, dataset, batch_size=4, grad_accum=4)
    paths = RunPaths(tmp_path / "oom")
    outcome = run(config, paths, callbacks=[RaiseAt(2, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))])
    assert outcome.state == "failed" and "out of GPU memory after 2 completed steps" in outcome.error
    status = json.loads(paths.status.read_text())
    assert status["state"] == "failed" and status["error"] == outcome.error
    texts = [item["text"] for item in status["advice"]]
    assert "batch_size 4 → 2 with grad_accum 4 → 8 keeps the effective batch of 16 (slower, same learning)" in texts[0]
    assert status["advice"][0]["changes"] == {"train.batch_size": 2, "train.grad_accum": 8}
    assert any("max_length 192 → 128" in t for t in texts)
    assert not any(t.startswith("lora.r") for t in texts)  # r=8 is already small: not offered
    assert any(item["changes"] == {"train.gradient_checkpointing": "on"} for item in status["advice"])
    failed = [e for e in read_events(paths.events) if e["type"] == "status"][-1]
    assert failed["state"] == "failed" and failed["advice"] == status["advice"]
    assert "Traceback" in paths.log.read_text()  # the full story is in train.log


def test_missing_dataset_is_a_user_error_recorded_in_the_status(tiny_model_dir, tmp_path):
    paths = RunPaths(tmp_path / "nodata")
    with pytest.raises(UserError, match="file not found"):
        run(tiny_config(tiny_model_dir, tmp_path / "missing.jsonl"), paths)
    status = read_status(paths.status)
    assert status.state == "failed" and "file not found" in status.error


class HangAt(TrainerCallback):
    """Blocks a step until the run reports a stall (or a minute passes)."""

    def __init__(self, step: int, paths: RunPaths):
        self.step, self.paths = step, paths

    def on_step_end(self, args, state, control, **kwargs):
        deadline = time.monotonic() + 60
        while state.global_step == self.step and time.monotonic() < deadline:
            if any(e["type"] == "stalled" for e in read_events(self.paths.events)):
                return
            time.sleep(0.1)


def test_a_stuck_step_is_reported_as_stalled(tiny_model_dir, dataset, tmp_path, monkeypatch):
    from carexpert.training import callbacks

    monkeypatch.setattr(callbacks, "MIN_STALL_SECONDS", 0.5)
    config = tiny_config(tiny_model_dir, dataset, max_steps=5, eval_steps=0, save_steps=100, stall_factor=2.0)
    paths = RunPaths(tmp_path / "stall")
    assert run(config, paths, callbacks=[HangAt(4, paths)]).state == "finished"
    stalls = [e for e in read_events(paths.events) if e["type"] == "stalled"]
    assert len(stalls) == 1
    assert stalls[0]["seconds_since_step"] > max(0.5, 2 * stalls[0]["median_step_s"])


def test_the_resume_fingerprint_matches_training_when_long_records_are_skipped(tiny_model_dir, dataset, tmp_path):
    from carexpert.runs import checkpoints
    from carexpert.training.data import data_fingerprint

    with dataset.open("a") as handle:
        handle.write(json.dumps({"instruction": "Tell me everything about engines.", "input": "",
                                 "output": "Pistons move. " * 200}) + "\n")
    config = tiny_config(tiny_model_dir, dataset, max_steps=1, save_steps=1, eval_steps=0)
    config.data.skip_bad_records = True
    paths = RunPaths(tmp_path / "skipped")
    run(config, paths)
    marker = checkpoints.read_marker(paths.checkpoints / "checkpoint-1")
    assert marker["dataset_fingerprint"] == data_fingerprint(config)


def test_the_time_limit_ends_training_then_validates_and_saves_the_adapter(tiny_model_dir, dataset, tmp_path):
    config = tiny_config(tiny_model_dir, dataset, max_steps=6, eval_steps=0, save_steps=100, max_minutes=0.0001)
    paths = RunPaths(tmp_path / "limited")
    assert run(config, paths).state == "finished"
    events = read_events(paths.events)
    assert max(losses(paths)) == 1  # 6 ms of budget: the first step boundary ends it
    assert any("time limit: stopped after step 1 of 6" in e.get("message", "") for e in events if e["type"] == "notice")
    assert [e["step"] for e in events if e["type"] == "eval"] == [1]  # validated as a finished run is
    assert (paths.adapter / "adapter_config.json").is_file()
