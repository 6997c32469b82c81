"""Run folders without training: the lock, dead detection, find/stop/delete, following events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from carexpert.errors import UserError
from carexpert.runs import EventWriter, RunPaths, RunStatus, write_status
from carexpert.runs.control import delete_run, find_run, list_runs, run_info, run_state, stop_run
from carexpert.runs.lock import RunLock, RunLockedError, lock_is_held
from carexpert.runs.watch import RunProgress, follow_run


def make_run(root, run_id: str, state: str, pid: int | None = None) -> RunPaths:
    paths = RunPaths(root / run_id)
    paths.root.mkdir(parents=True)
    paths.config.write_text("")
    write_status(paths.status, RunStatus(state=state, pid=pid if pid is not None else os.getpid()))
    return paths


def test_lock_is_exclusive_and_released_by_close(tmp_path):
    path = tmp_path / ".lock"
    assert not lock_is_held(path)
    with RunLock(path):
        assert lock_is_held(path)
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(path).acquire()
    assert not lock_is_held(path)


def test_lock_waits_for_a_holder_that_is_exiting(tmp_path):
    path = tmp_path / ".lock"
    holder = RunLock(path).acquire()
    threading.Timer(0.3, holder.close).start()
    started = time.monotonic()
    RunLock(path).acquire(wait_seconds=5).close()
    assert time.monotonic() - started >= 0.25


def test_lock_survives_in_a_child_and_dies_with_it(tmp_path):
    path = tmp_path / ".lock"
    lock = RunLock(path).acquire()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], pass_fds=(lock.fd,))
    lock.close()
    try:
        assert lock_is_held(path)  # the child's inherited descriptor keeps it
    finally:
        child.kill()
        child.wait()
    assert not lock_is_held(path)


def test_a_live_state_without_process_or_lock_is_dead(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = make_run(tmp_path, "dead", "running", pid=gone.pid)
    assert run_state(dead) == "dead"
    unlocked = make_run(tmp_path, "unlocked", "running")  # our pid is alive, but nobody holds the lock
    assert run_state(unlocked) == "dead"
    live = make_run(tmp_path, "live", "running")
    with RunLock(live.lock):
        assert run_state(live) == "running"
        with pytest.raises(UserError, match="cannot be deleted while it trains"):
            delete_run(run_info(live), yes=True)
    finished = make_run(tmp_path, "finished", "finished")
    assert run_state(finished) == "finished"
    assert {info.run_id: info.state for info in list_runs(tmp_path)} == {
        "dead": "dead", "unlocked": "dead", "live": "dead", "finished": "finished"}


def test_find_stop_and_delete_refuse_clearly(tmp_path):
    with pytest.raises(UserError, match="no run 'nope'"):
        find_run(tmp_path, "nope")
    with pytest.raises(UserError, match="invalid run id"):
        find_run(tmp_path, "..")
    stopped = make_run(tmp_path, "s", "stopped")
    assert find_run(tmp_path, "s").paths == stopped
    assert find_run(tmp_path, str(stopped.root)).run_id == "s"
    with pytest.raises(UserError, match="is not running"):
        stop_run(run_info(stopped))
    with pytest.raises(UserError, match="--yes"):
        delete_run(run_info(stopped), yes=False)
    delete_run(run_info(stopped), yes=True)
    assert not stopped.root.exists()


def test_stop_sends_sigterm_to_the_runs_process(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\nprint('ready', flush=True)\n"
                              "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    paths = make_run(tmp_path, "live", "running", pid=child.pid)
    with RunLock(paths.lock).acquire(holder_pid=child.pid):  # as the launcher records its child
        assert stop_run(run_info(paths)) == child.pid
    assert child.wait(timeout=10) == 7


def test_follow_run_reads_until_the_run_is_no_longer_live(tmp_path):
    paths = make_run(tmp_path, "f", "running")
    lock = RunLock(paths.lock).acquire()
    writer = EventWriter(paths.events)
    writer.emit("status", state="stopped", step=3)  # an earlier segment's end does not end the watch
    writer.emit("start", run_id="f", resumed_from=3)

    def finish() -> None:
        time.sleep(0.3)
        writer.emit("step", step=4, max_steps=5, loss=1.5, lr=1e-4, tokens_per_s=100.0, eta_s=2.0,
                    gpus=[{"index": 0, "allocated": 1, "reserved": 2, "peak": 3}])
        writer.emit("status", state="finished", step=5, max_steps=5)
        write_status(paths.status, RunStatus(state="finished", pid=os.getpid(), step=5))
        lock.close()

    threading.Thread(target=finish).start()
    progress = RunProgress()
    for event in follow_run(paths, poll_seconds=0.05):
        progress.update(event)
    assert (progress.state, progress.step, progress.max_steps, progress.loss) == ("finished", 5, 5, 1.5)
    assert progress.resumed_from == 3 and progress.peak_gpu_bytes == 3
    writer.close()


def test_a_worker_that_cannot_read_its_config_records_the_failure(tmp_path):
    paths = make_run(tmp_path, "broken", "pending")
    paths.config.write_text("[train\nbatch_size = 4\n")
    result = subprocess.run([sys.executable, "-m", "carexpert.training.worker", "--run-dir", str(paths.root)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "malformed TOML" in result.stderr and "Traceback" not in result.stderr
    status = run_info(paths).status
    assert status.state == "failed" and "config.toml" in status.error
