"""The event log and status contract: one writer, one reader, torn lines, dead runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from carexpert.errors import UserError
from carexpert.runs import (
    EventFollower,
    EventWriter,
    RunPaths,
    RunStatus,
    effective_state,
    read_events,
    read_status,
    validate_run_id,
    write_status,
)


def test_follower_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    follower = EventFollower(path)
    assert follower.poll() == []
    writer.emit("step", step=1, loss=2.0)
    writer.emit("step", step=2, loss=1.5)
    assert [e["step"] for e in follower.poll()] == [1, 2]
    assert follower.poll() == []
    with open(path, "a") as handle:
        handle.write('{"v": 1, "type": "step", "step": 3')  # torn: no newline yet
    assert follower.poll() == []
    with open(path, "a") as handle:
        handle.write(', "loss": 1.0}\n')
    (event,) = follower.poll()
    assert event["step"] == 3 and event["loss"] == 1.0


def test_corrupt_complete_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "step", "step": 1}\nnot json\n[1, 2]\n\x00\x01\n{"type": "eval", "step": 1}\n')
    follower = EventFollower(path)
    assert [e["type"] for e in follower.read_all()] == ["step", "eval"]
    assert follower.corrupt_lines == 3


def test_recreated_file_is_read_from_the_top(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        for step in range(5):
            writer.emit("step", step=step)
    follower = EventFollower(path)
    assert len(follower.read_all()) == 5
    path.unlink()
    with EventWriter(path) as writer:
        writer.emit("start", run_id="x")
    assert [e["type"] for e in follower.poll()] == ["start"]


def test_every_event_is_versioned_and_json_safe(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit("step", step=1, loss=float("nan"), grad_norm=float("inf"), path=tmp_path)
    (event,) = read_events(path)
    assert event["v"] == 1 and event["loss"] is None and event["grad_norm"] is None
    assert event["path"] == str(tmp_path)
    with pytest.raises(ValueError):
        EventWriter(tmp_path / "x.jsonl").emit("no-such-type")


def test_status_round_trip_and_dead_detection(tmp_path):
    path = tmp_path / "status.json"
    assert read_status(path) is None
    write_status(path, RunStatus(state="running", pid=os.getpid(), step=7))
    status = read_status(path)
    assert status.step == 7 and effective_state(status) == "running"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    write_status(path, RunStatus(state="running", pid=child.pid))
    assert effective_state(read_status(path)) == "dead"
    write_status(path, RunStatus(state="finished", pid=child.pid))
    assert effective_state(read_status(path)) == "finished"
    path.write_text("{ torn")
    assert read_status(path) is None and effective_state(None) == "unknown"
    path.write_text(json.dumps({"state": "running", "pid": 1, "unknown_future_key": 3}))
    assert read_status(path).state == "running"


@pytest.mark.parametrize("bad", ["../etc", "..", "a/b", "/abs", ".hidden", "", "a" * 81, "x\x00y", "a\\b", "a..b"])
def test_run_ids_cannot_escape_the_runs_folder(tmp_path, bad):
    with pytest.raises(UserError):
        validate_run_id(bad)
    with pytest.raises(UserError):
        RunPaths.of(tmp_path, bad)


def test_good_run_ids_are_accepted(tmp_path):
    assert RunPaths.of(tmp_path, "run-20261125-094500-a1b2").root == tmp_path / "run-20261125-094500-a1b2"
