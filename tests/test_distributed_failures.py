"""How a several-GPU run names its failure: rank records, the supervisor's final status, the fault drill.

No processes here (the end-to-end gloo runs are in test_training_ddp.py): records and
status files are written by hand, as ranks and rank 0 would leave them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import pytest

from carexpert.errors import UserError
from carexpert.runs import RunPaths, read_events, read_status
from carexpert.runs.status import RunStatus, write_status
from carexpert.training import rank_failures
from carexpert.training.faults import ENV, Fault, FaultCallback, InjectedFault, fault_callbacks
from carexpert.training.rank_failures import RankFailure, describe, read_failures, record_failure
from carexpert.training.supervisor import conclude, how_it_ended, launcher_arguments, rank_environment


def failure(rank: int, error: str, at: float, step: int = 2, **extra) -> RankFailure:
    return RankFailure(rank, 4, error, step, time=at, **extra)


def test_the_earliest_record_is_the_root_cause_and_silent_ranks_are_named():
    records = [failure(2, "torch.OutOfMemoryError: CUDA out of memory", 10.0),
               failure(0, "DistBackendError: NCCL error: remote process exited", 11.0)]
    message = describe(records, 4, ended={3: how_it_ended(-9)})
    assert message == ("rank 2 of 4 failed at step 2: torch.OutOfMemoryError: CUDA out of memory; "
                       "rank 0 then failed too (DistBackendError: NCCL error: remote process exited); "
                       "rank 1 gave no error (hung, or ended by the launcher once another rank had failed); "
                       "rank 3 was killed by SIGKILL (out of host memory, or ended by the launcher)")


def test_timeouts_with_a_silent_rank_say_which_rank_hung():
    records = [failure(0, "RuntimeError: Timed out waiting 600000ms for recv", 5.0, step=7),
               failure(2, "DistBackendError: WorkNCCL(OpType=ALLREDUCE) ran for 600031 milliseconds before "
                          "timing out", 5.5, step=7),
               failure(3, "RuntimeError: Timed out waiting 600000ms for recv", 6.0, step=7)]
    message = describe(records, 4)
    assert message.startswith("rank 1 of 4 stopped answering (hung) after step 7: the collective of rank 0 "
                              "timed out — RuntimeError: Timed out waiting 600000ms")
    assert "rank 2 timed out too; rank 3 timed out too; rank 1 gave no error" in message


def test_the_same_error_on_every_rank_is_said_once():
    records = [failure(r, "the config or the data changed since checkpoint-4", 1.0 + r, step=4) for r in range(4)]
    assert describe(records, 4) == "all 4 ranks failed at step 4: the config or the data changed since checkpoint-4"


def test_no_record_at_all_points_at_the_exits():
    message = describe([], 2, ended={0: how_it_ended(-6), 1: how_it_ended(1)})
    assert message == ("none of the 2 ranks recorded an error; rank 0 was killed by SIGABRT (NCCL tears a rank "
                       "down when a collective fails or times out); rank 1 exited with status 1 without recording "
                       "an error; the end of train.log has each rank's exit")


def test_records_round_trip_and_a_torn_one_is_skipped(tmp_path):
    run = RunPaths(tmp_path / "r")
    record_failure(run, failure(1, "late", 9.0))
    record_failure(run, failure(0, "early", 3.0, advice=[{"text": "lower train.batch_size", "changes": {}}]))
    (rank_failures.ranks_dir(run) / "rank-2.json").write_text('{"rank": 2, "err', encoding="utf-8")
    found = read_failures(run)
    assert [(f.rank, f.error) for f in found] == [(0, "early"), (1, "late")]
    assert found[0].advice[0]["text"] == "lower train.batch_size"
    rank_failures.clear(run)
    assert read_failures(run) == []


def _running_run(tmp_path, state: str = "running") -> RunPaths:
    run = RunPaths(tmp_path / "r")
    run.root.mkdir()
    write_status(run.status, RunStatus(state=state, pid=123, step=6, max_steps=10))
    return run


def test_the_supervisor_writes_one_final_failed_status_with_the_root_cause_and_its_advice(tmp_path):
    run = _running_run(tmp_path)
    advice = [{"text": "halve the micro-batch", "changes": {"train.batch_size": 2}}]
    record_failure(run, RankFailure(1, 2, "out of GPU memory after 6 completed steps", 6, time=1.0, advice=advice))
    assert conclude(run, 2, ended={0: how_it_ended(-9)}) == 1
    status = read_status(run.status)
    assert status.state == "failed" and status.advice == advice and status.step == 6
    assert status.error == ("rank 1 of 2 failed at step 6: out of GPU memory after 6 completed steps; rank 0 was "
                            "killed by SIGKILL (out of host memory, or ended by the launcher)")
    (event,) = read_events(run.events)
    assert event["type"] == "status" and event["state"] == "failed" and event["error"] == status.error


def test_the_supervisor_leaves_a_run_that_rank_0_ended_alone(tmp_path):
    run = _running_run(tmp_path, state="finished")
    assert conclude(run, 2, ended={}) == 0
    assert read_status(run.status).state == "finished" and not run.events.exists()
    record_failure(run, RankFailure(1, 2, "RuntimeError: Connection closed by peer", 10, time=1.0))
    assert conclude(run, 2, ended={1: how_it_ended(1)}) == 0  # the adapter is complete: still finished
    assert read_status(run.status).state == "finished"
    (notice,) = read_events(run.events)
    assert notice["type"] == "notice" and notice["message"].startswith(
        "after rank 0 had finished the run: rank 1 of 2 failed at step 10: RuntimeError: Connection closed")


def test_a_stop_that_reached_only_the_supervisor_ends_the_run_stopped(tmp_path):
    run = _running_run(tmp_path, state="pending")
    assert conclude(run, 2, ended={}, stopped_by="SIGTERM") == 0
    status = read_status(run.status)
    assert status.state == "stopped" and status.error == "stopped (SIGTERM) before training began"


def test_the_ranks_environment_keeps_nvlink_multicast_off_and_collectives_fatal():
    env = rank_environment({"NCCL_NVLS_ENABLE": "1", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}, 4242)
    assert env["NCCL_NVLS_ENABLE"] == "0"  # never on, whatever the caller's environment says
    assert env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1"  # an explicit choice is kept
    assert rank_environment({}, 1)["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "3"
    assert env["CAREXPERT_SUPERVISOR_PID"] == "4242"
    args = launcher_arguments(2, ["--run-dir", "/r"])
    assert args[:3] == ["--standalone", "--nproc_per_node=2", "--max_restarts=0"]
    assert args[-4:] == ["-m", "carexpert.training.worker", "--run-dir", "/r"]


def test_the_fault_drill_parses_and_targets_one_rank():
    assert Fault.parse("rank=1,step=2,mode=hang") == Fault(1, 2, "hang")
    assert fault_callbacks(0, {}) == [] and fault_callbacks(0, {ENV: "rank=1,step=2"}) == []
    (callback,) = fault_callbacks(1, {ENV: "rank=1,step=2"})
    state = type("State", (), {"global_step": 1})()
    callback.on_step_end(None, state, None)  # not yet
    state.global_step = 2
    with pytest.raises(InjectedFault, match="rank 1 fails at step 2 on purpose"):
        callback.on_step_end(None, state, None)
    assert isinstance(callback, FaultCallback)


@pytest.mark.parametrize("text", ["step=0", "rank=1", "rank=x,step=2", "rank=1,step=2,mode=explode"])
def test_a_bad_fault_is_a_user_error_naming_the_variable(text):
    with pytest.raises(UserError, match=ENV):
        Fault.parse(text)


def test_rank_0_hands_the_status_to_the_supervisor_or_writes_it_without_one(tmp_path, monkeypatch):
    from carexpert.training.entry import Ranks, _end_failed
    from carexpert.training.reporter import Reporter

    run = _running_run(tmp_path)
    monkeypatch.setenv("CAREXPERT_SUPERVISOR_PID", "4242")
    reporter = Reporter(run)
    _end_failed(reporter, Ranks(0, 0, 2), "RuntimeError: Connection closed by peer", step=6)
    reporter.close()
    status = read_status(run.status)
    assert status.state == "running" and status.pid == 4242  # the supervisor writes the end
    assert [f.error for f in read_failures(run)] == ["RuntimeError: Connection closed by peer"]

    monkeypatch.delenv("CAREXPERT_SUPERVISOR_PID")  # launched across hosts: nobody outlives rank 0
    record_failure(run, RankFailure(1, 2, "InjectedFault: on purpose", 6, time=time.time() - 1))
    stale = RankFailure(0, 2, "from an earlier attempt", 3, time=1.0)
    rank_failures.ranks_dir(run).joinpath("rank-9.json").write_text(json.dumps(asdict(stale)), encoding="utf-8")
    reporter = Reporter(run)
    _end_failed(reporter, Ranks(0, 0, 2), "RuntimeError: Connection closed by peer", step=6)
    reporter.close()
    status = read_status(run.status)
    assert status.state == "failed"
    assert status.error.startswith("rank 1 of 2 failed at step 6: InjectedFault: on purpose; rank 0 then failed")
