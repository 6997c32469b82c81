"""The run folder's products, read through carexpert.runs: adapter, results, frozen config, checkpoints, logs."""

from __future__ import annotations

import json

import pytest

from carexpert.config import Config, write_frozen_config
from carexpert.errors import UserError
from carexpert.runs import RunPaths
from carexpert.runs.artifacts import (
    config_for_adapter,
    eval_results,
    has_adapter,
    is_adapter_dir,
    require_adapter,
)
from carexpert.runs.checkpoints import trained_fingerprint, write_marker
from carexpert.runs.events import stalled_now
from carexpert.runs.log_tail import LogFollower


def test_adapter_presence_is_the_adapter_config(tmp_path):
    run = RunPaths(tmp_path / "r1")
    with pytest.raises(UserError, match="no run"):
        require_adapter(run)
    run.adapter.mkdir(parents=True)
    assert not has_adapter(run)
    with pytest.raises(UserError, match="no trained adapter yet"):
        require_adapter(run)
    (run.adapter / "adapter_config.json").write_text("{}")
    assert has_adapter(run) and is_adapter_dir(run.adapter) and require_adapter(run) == run.adapter


def test_config_for_adapter_takes_what_the_adapter_is_from_the_run_and_leaves_the_current_config_alone(tmp_path):
    run = RunPaths(tmp_path / "r1")
    run.root.mkdir()
    trained = Config()
    trained.lora.r, trained.data.max_length, trained.chat.temperature = 8, 256, 0.1
    write_frozen_config(run.config, trained)
    current = Config()
    current.lora.r, current.data.max_length, current.chat.temperature, current.eval.limit = 32, 1024, 0.9, 5
    chosen = config_for_adapter(run, current)
    assert (chosen.lora.r, chosen.data.max_length) == (8, 256)            # what the adapter is: the run's
    assert (chosen.chat.temperature, chosen.eval.limit) == (0.9, 5)        # how it is used now: the caller's
    assert (current.lora.r, current.data.max_length) == (32, 1024)         # not changed in place
    assert config_for_adapter(RunPaths(tmp_path / "no-config"), current) is current


def test_the_adapter_is_asked_with_the_context_shape_it_was_trained_on_from_the_current_store(tmp_path):
    run = RunPaths(tmp_path / "r1")
    run.root.mkdir()
    trained = Config()
    trained.retrieval.top_k, trained.retrieval.max_context_tokens, trained.retrieval.store = 1, 256, "old.sqlite"
    write_frozen_config(run.config, trained)
    current = Config()
    current.retrieval.enabled, current.retrieval.guard, current.retrieval.store = False, False, "new.sqlite"
    chosen = config_for_adapter(run, current).retrieval
    assert (chosen.top_k, chosen.max_context_tokens) == (1, 256)                     # trained on one passage
    assert (chosen.enabled, chosen.guard, chosen.store) == (False, False, "new.sqlite")  # used now: the caller's
    assert current.retrieval.top_k == Config().retrieval.top_k


def test_eval_results_lists_complete_results_newest_first(tmp_path):
    run = RunPaths(tmp_path / "r1")
    for name in ("20261125-100000", "20261126-100000", "20261127-100000", ".20261128-100000.tmp"):
        (run.eval / name).mkdir(parents=True)
    for name in ("20261125-100000", "20261126-100000", ".20261128-100000.tmp"):
        (run.eval / name / "summary.json").write_text("{}")
    assert [p.name for p in eval_results(run)] == ["20261126-100000", "20261125-100000"]
    assert eval_results(RunPaths(tmp_path / "none")) == []


def test_trained_fingerprint_is_the_newest_marker_that_records_one(tmp_path):
    run = RunPaths(tmp_path / "r1")
    assert trained_fingerprint(run) is None
    for step, fingerprint in ((2, "old"), (4, "new"), (6, None)):
        folder = run.checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        write_marker(folder, {"step": step, "dataset_fingerprint": fingerprint})
    assert trained_fingerprint(run) == "new"


def test_stalled_now_reads_the_newest_progress_event(tmp_path):
    events = tmp_path / "events.jsonl"
    assert not stalled_now(events)
    lines = [{"type": "step", "step": 1}, {"type": "stalled", "seconds_since_step": 90}, {"type": "notice"}]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"type": "st')  # torn last line
    assert stalled_now(events)
    with open(events, "a") as handle:
        handle.write('ep"}\n')
    assert not stalled_now(events)


def test_log_follower_starts_near_the_end_and_returns_whole_new_lines(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("old line one\nold line two\n")
    follower = LogFollower(log, tail_bytes=len("old line two\n"))
    assert follower.poll() == "old line two\n"
    with open(log, "a") as handle:
        handle.write("new\npart")
    assert follower.poll() == "new\n"
    assert follower.poll() == ""
    log.write_text("fresh\n")  # recreated smaller: read from the top
    assert follower.poll() == "fresh\n"
    assert LogFollower(tmp_path / "missing.log").poll() == ""
