"""The server's parts without HTTP: the bounded queue, the model registry (base + finished runs), the bind checks."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from test_export import make_adapter

from carexpert.chat.sampling import SamplingSettings
from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.serve.models import ModelRegistry, UnknownModel
from carexpert.serve.scheduler import Job, QueueFull, Scheduler
from carexpert.serve.server import ServeOptions, check_bind, is_loopback


def job(**kwargs) -> Job:
    return Job(model="base", question="Q?", sampling=SamplingSettings(), **kwargs)


def test_the_queue_admits_up_to_capacity_then_refuses_with_retry_after():
    release = threading.Event()
    ran: list[str] = []

    def execute(item: Job) -> dict:
        release.wait(10)
        ran.append(item.question)
        return {"finish_reason": "eos", "completion_tokens": 5, "decode_seconds": 0.5}

    scheduler = Scheduler(execute, capacity=2).start()
    try:
        first, second = job(), job()
        scheduler.submit(first)
        scheduler.submit(second)
        with pytest.raises(QueueFull) as full:
            scheduler.submit(job())
        assert full.value.retry_after >= 1
        second.cancel.set()  # its client left while it waited: it must never run
        release.set()
        deadline = time.monotonic() + 10
        while scheduler.snapshot()["running"] or scheduler.snapshot()["waiting"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        snapshot = scheduler.snapshot()
        assert ran == ["Q?"] and snapshot["completed"] == 1 and snapshot["cancelled"] == 1
        assert snapshot["rejected"] == 1 and snapshot["requests"] == 2 and snapshot["tokens"] == 5
        assert snapshot["tokens_per_second"] == pytest.approx(10.0)
        scheduler.submit(job())  # room again
    finally:
        scheduler.close()


def test_a_failing_answer_is_reported_to_its_request_and_the_queue_keeps_serving():
    events: list[tuple[str, object]] = []

    def execute(item: Job) -> dict:
        if item.question == "boom":
            raise RuntimeError("model exploded")
        return {"finish_reason": "eos", "completion_tokens": 1}

    scheduler = Scheduler(execute, capacity=4).start()
    try:
        bad = Job(model="base", question="boom", sampling=SamplingSettings(), emit=lambda k, p: events.append((k, p)))
        good = Job(model="base", question="ok", sampling=SamplingSettings(), emit=lambda k, p: events.append((k, p)))
        scheduler.submit(bad)
        scheduler.submit(good)
        deadline = time.monotonic() + 10
        while len(events) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        scheduler.close()
    assert events[0][0] == "error" and isinstance(events[0][1], RuntimeError)
    assert events[1] == ("done", {"finish_reason": "eos", "completion_tokens": 1})


def test_bind_checks():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(UserError, match="without an API key"):
        check_bind(ServeOptions(host="0.0.0.0"))
    with pytest.raises(UserError, match="too short"):
        check_bind(ServeOptions(host="0.0.0.0", api_key="short"))
    assert check_bind(ServeOptions(host="0.0.0.0", api_key="a-long-enough-key")).api_key == "a-long-enough-key"
    with pytest.raises(UserError, match="--max-queue"):
        check_bind(ServeOptions(max_queue=0))


def test_models_are_the_base_and_finished_runs_by_id_never_a_path(tiny_model_dir, tmp_path):
    from carexpert.config import write_frozen_config
    from carexpert.runs.paths import RunPaths, mark_run_folder

    runs = tmp_path / "runs"
    finished = runs / "run-20261201-120000-aaaa"
    make_adapter(tiny_model_dir, finished / "adapter")
    (runs / "run-20261201-130000-bbbb").mkdir(parents=True)  # no adapter yet: not served
    base = Config()
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, base_model=str(tiny_model_dir),
                                                                 quantization="none"),
                                 train=dataclasses.replace(base.train, runs_dir=str(runs)))
    write_frozen_config(finished / "config.toml", config)
    mark_run_folder(RunPaths(finished))  # carexpert's own run marker: only marked folders are runs
    registry = ModelRegistry(config, max_loaded=1)
    assert registry.ids() == ["base", "run-20261201-120000-aaaa"]
    for bad in ("run-20261201-130000-bbbb", str(finished), "../runs/run-20261201-120000-aaaa", 3, None):
        with pytest.raises(UnknownModel):
            registry.check(bad)
    tuned = registry.engine("run-20261201-120000-aaaa")
    assert tuned.adapter_dir == finished / "adapter" and tuned.loaded
    assert registry.engine("run-20261201-120000-aaaa") is tuned  # loaded once
    reply = tuned.reply("What is torque?", sampling=SamplingSettings(temperature=0.0, max_new_tokens=3))
    assert "".join(reply) == reply.text and reply.stats.new_tokens == 3
    registry.engine("base")
    assert registry.loaded_ids() == ["base"]  # --max-loaded 1: the run's engine was let go
