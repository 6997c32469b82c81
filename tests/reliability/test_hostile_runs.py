"""Findings 2, 4, 7 (status), 8 and the run items of 10 and 11: run commands act only on
carexpert's own run folders inside ``train.runs_dir``, signal only a process the lock proves,
and one bad ``status.json`` hides nothing but itself."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

from hostile_support import cli, make_run, project

from carexpert.runs import RunStatus, read_status, write_status
from carexpert.runs.events import EventWriter
from carexpert.runs.lock import RunLock
from carexpert.runs.status import RESERVE_NAME, reserve_status_space


def test_finding_2_delete_refuses_a_folder_outside_the_runs_folder(tmp_path, capsys):
    config = project(tmp_path)
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "config.toml").write_text("")
    (victim / "precious.txt").write_text("mine")
    code, _, err = cli(capsys, "runs", "delete", victim, "--yes", "-c", config)
    assert code == 2 and "not a folder inside the runs folder" in err
    assert (victim / "precious.txt").read_text() == "mine"
    # A path that walks out through '..' is the same thing.
    code, _, _ = cli(capsys, "runs", "delete", f"{tmp_path / 'runs'}/../x", "--yes", "-c", config)
    assert code == 2 and victim.exists()


def test_finding_2_delete_refuses_a_folder_in_the_runs_folder_that_is_not_a_run(tmp_path, capsys):
    config = project(tmp_path)
    stranger = tmp_path / "runs" / "Documents"  # runs_dir pointed at a folder that holds other things
    stranger.mkdir()
    (stranger / "config.toml").write_text("")
    code, _, err = cli(capsys, "runs", "delete", "Documents", "--yes", "-c", config)
    assert code == 2 and "not a carexpert run folder" in err and stranger.exists()
    code, out, _ = cli(capsys, "runs", "list", "-c", config)
    assert code == 0 and "Documents" not in out
    run = make_run(tmp_path / "runs", "run-a")  # a real run still goes, by id and by path
    assert cli(capsys, "runs", "delete", run.root, "--yes", "-c", config)[0] == 0 and not run.root.exists()


def test_finding_10_delete_of_a_symlinked_entry_is_refused_and_the_target_kept(tmp_path, capsys):
    config = project(tmp_path)
    target = make_run(tmp_path / "elsewhere", "run-real")
    (tmp_path / "runs" / "run-link").symlink_to(target.root)
    code, _, err = cli(capsys, "runs", "delete", "run-link", "--yes", "-c", config)
    assert code == 2 and "symbolic link" in err
    assert target.status.exists() and (tmp_path / "runs" / "run-link").is_symlink()


def _sleeper() -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                              "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\nprint('ready', flush=True)\n"
                              "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_finding_4_stop_never_signals_through_a_lock_that_is_a_link_to_another_runs_lock(tmp_path, capsys):
    config = project(tmp_path)
    runs = tmp_path / "runs"
    bystander = _sleeper()  # an unrelated process whose pid an attacker wrote into status.json
    try:
        real = make_run(runs, "run-real", "running")
        held = RunLock(real.lock).acquire()  # the other run really trains
        fake = make_run(runs, "run-fake", "running", pid=bystander.pid)
        fake.lock.symlink_to(real.lock)
        code, _, err = cli(capsys, "runs", "stop", "run-fake", "-c", config)
        assert code == 2 and "not running" in err  # the linked lock does not make it look alive
        time.sleep(0.3)
        assert bystander.poll() is None, "an unrelated process was signalled"
        code, out, _ = cli(capsys, "runs", "list", "-c", config)
        assert "run-fake" in out and "dead" in out.split("run-fake")[1].splitlines()[0]
        held.close()
    finally:
        bystander.kill()
        bystander.wait()


HOLD_LOCK = """
import sys, time
from carexpert.runs.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_finding_4_stop_refuses_a_lock_that_names_another_pid_or_a_reused_one(tmp_path, capsys):
    from carexpert.runs.lock import process_start_time

    config = project(tmp_path)
    child = _sleeper()
    paths = make_run(tmp_path / "runs", "run-live", "running", pid=child.pid)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(paths.lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # held by a process that is not the status's pid
        code, _, err = cli(capsys, "runs", "stop", "run-live", "-c", config)
        assert code == 2 and f"names pid {holder.pid}" in err and child.poll() is None
        paths.lock.write_text(f"{child.pid} 1\n")  # the status's pid, with another process's start time
        code, _, err = cli(capsys, "runs", "stop", "run-live", "-c", config)
        assert code == 2 and "different process" in err and child.poll() is None
        paths.lock.write_text(f"{child.pid} {process_start_time(child.pid)}\n")  # as the launcher records it
        assert cli(capsys, "runs", "stop", "run-live", "-c", config)[0] == 0
        assert child.wait(timeout=10) == 7
    finally:
        for process in (child, holder):
            process.kill()
            process.wait()


def test_finding_8_one_status_of_the_wrong_type_hides_only_its_own_run(tmp_path, capsys):
    config = project(tmp_path)
    good = make_run(tmp_path / "runs", "run-good", "finished")
    bad = make_run(tmp_path / "runs", "run-bad")
    for broken in ({"state": "running", "pid": "1", "host": socket.gethostname(), "updated": 1.0},
                   {"state": "running", "pid": True, "host": "h", "updated": 1.0, "step": "3"},
                   [1, 2], "x" * 10):
        bad.status.write_text(json.dumps(broken))
        assert read_status(bad.status) is None
        code, out, err = cli(capsys, "runs", "list", "-c", config)
        assert code == 0, err
        assert "run-good" in out and "finished" in out and "run-bad" in out and "unknown" in out
        code, out, _ = cli(capsys, "runs", "show", "run-bad", "-c", config)
        assert code == 0 and "unknown" in out
    assert read_status(good.status).state == "finished"


def test_finding_7_a_failure_on_a_full_disk_reaches_status_json(tmp_path, capsys, monkeypatch):
    config = project(tmp_path)
    paths = make_run(tmp_path / "runs", "run-full", "running")
    assert reserve_status_space(paths.root) and (paths.root / RESERVE_NAME).stat().st_size > 0
    import carexpert.runs.status as status_module

    real_write = status_module.atomic_write_json

    def full_disk(path, obj):  # no byte free until the run's reserve is given back
        if (paths.root / RESERVE_NAME).exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, obj)

    monkeypatch.setattr(status_module, "atomic_write_json", full_disk)
    error = "disk full while writing at step 7 (checkpoint-7); earlier checkpoints are intact"
    write_status(paths.status, RunStatus(state="failed", pid=os.getpid(), error=error, step=7))
    monkeypatch.undo()
    assert read_status(paths.status).state == "failed"
    code, out, _ = cli(capsys, "runs", "show", "run-full", "-c", config)
    assert code == 0 and "failed" in out and "disk full" in out and "dead" not in out


def test_finding_7_a_run_whose_status_write_failed_shows_its_logged_failure_not_dead(tmp_path, capsys):
    config = project(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    paths = make_run(tmp_path / "runs", "run-gone", "running", pid=gone.pid)
    with EventWriter(paths.events) as events:  # the trainer logged its end; status.json could not follow
        events.emit("status", state="failed", error="disk full while writing at step 3", step=3)
    code, out, _ = cli(capsys, "runs", "show", "run-gone", "-c", config)
    assert code == 0 and "disk full while writing at step 3" in out and "killed or the machine restarted" not in out


def test_finding_7_resume_on_a_full_disk_is_a_plain_message(tmp_path, capsys, monkeypatch):
    config = project(tmp_path)
    make_run(tmp_path / "runs", "run-stopped", "stopped")
    import carexpert.training.start as start

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "run-stopped" / "status.json"))

    monkeypatch.setattr(start, "resume_run", no_space)
    code, _, err = cli(capsys, "runs", "resume", "run-stopped", "--detach", "-c", config)
    assert code == 2 and "No space left on device" in err and "free disk space" in err and "bug" not in err


def test_finding_11_watching_a_live_run_of_another_host_says_so_at_once(tmp_path, capsys):
    config = project(tmp_path)
    make_run(tmp_path / "runs", "run-far", "running", host="another-machine")
    started = time.monotonic()
    code, _, err = cli(capsys, "runs", "watch", "run-far", "-c", config)
    assert code == 2 and "another-machine" in err and time.monotonic() - started < 10


def test_finding_4_a_lock_that_is_a_fifo_or_link_is_never_opened_for_writing(tmp_path):
    from carexpert.errors import UserError

    paths = make_run(tmp_path / "runs", "run-odd")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    paths.lock.symlink_to(victim)
    try:
        RunLock(paths.lock).acquire()
        raise AssertionError("a symlinked lock was taken")
    except UserError as error:
        assert "symbolic link" in error.message
    assert victim.read_text() == "keep me"  # not truncated to hold a pid
    paths.lock.unlink()
    os.mkfifo(paths.lock)
    try:
        RunLock(paths.lock).acquire()
        raise AssertionError("a FIFO lock was taken")
    except UserError as error:
        assert "not a regular file" in error.message


def test_stop_of_a_run_without_a_live_lock_holder_sends_nothing(tmp_path, capsys):
    """Finding 4 again: a status naming a live, unrelated pid with no lock at all is not signalled."""
    config = project(tmp_path)
    bystander = _sleeper()
    try:
        make_run(tmp_path / "runs", "run-nolock", "running", pid=bystander.pid)
        code, _, _ = cli(capsys, "runs", "stop", "run-nolock", "-c", config)
        assert code == 2 and bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()
