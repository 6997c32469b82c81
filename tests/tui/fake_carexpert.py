"""A stand-in for the ``carexpert`` command in the app's tests: the same contract, no model.

    python fake_carexpert.py train [--config F] --detach           start a run, print its id
    python fake_carexpert.py train [--config F] --resume RUN [--force] --detach
    python fake_carexpert.py runs stop RUN [--config F]            SIGTERM the run's process
    python fake_carexpert.py eval RUN [--config F]                 write a canned evaluation result
    python fake_carexpert.py serve [RUN | --base] --state-dir D    a fake API server: status.json, until SIGTERM
    python fake_carexpert.py serve --stop --state-dir D            stop it (the real carexpert.serve.status code)

A started run is a detached process in its own session (like the real trainer) that
replays ``fixtures/canned_events.jsonl`` into ``runs/<id>/events.jsonl`` with fresh
times, keeps ``status.json`` current, writes ``train.log``, and on SIGTERM ends as
``stopped``. ``FAKE_STEP_DELAY`` (seconds between steps, default 0.05) sets its pace.
Like the real trainer it holds the run's lock while it lives. ``FAKE_STALL_AFTER=N``
makes it emit ``stalled`` after step N and hang there until stopped (30 s at most). A resume records
its arguments in ``fake_resume.json`` in the run folder, so tests can check them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from carexpert.config import load_or_default
from carexpert.runs import EventWriter, RunPaths, RunStatus, new_run_id, read_events, read_status, write_status
from carexpert.runs.lock import RunLock

CANNED = HERE / "fixtures" / "canned_events.jsonl"
FIXTURE_RESULT = HERE / "fixtures" / "runs" / "run-20261125-101500-ab12" / "eval" / "20261125-120000"


def runs_dir(config: str | None) -> Path:
    return Path(load_or_default(config).train.runs_dir)


def start(args: argparse.Namespace) -> int:
    if args.resume:
        paths = RunPaths.of(runs_dir(args.config), args.resume)
        if not paths.exists():
            print(f"error: no run {args.resume!r}", file=sys.stderr)
            return 2
        record = {"force": args.force, "config": args.config,
                  "config_text": Path(args.config).read_text() if args.config else None}
        (paths.root / "fake_resume.json").write_text(json.dumps(record))
    else:
        paths = RunPaths.of(runs_dir(args.config), new_run_id())
        paths.root.mkdir(parents=True)
        (paths.root / "fake_start.json").write_text(json.dumps({"quick": args.quick, "yes": args.yes}))
    with open(paths.log, "ab") as log:
        child = subprocess.Popen([sys.executable, __file__, "_replay", str(paths.root)], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 10  # return once the run has said it is running (as the real launcher does)
    while time.time() < deadline and getattr(read_status(paths.status), "pid", None) != child.pid:
        time.sleep(0.01)
    print(f"started run {paths.run_id} in {paths.root}")
    print(paths.run_id)
    print(f"watch: carexpert runs watch {paths.run_id}")
    return 0


def replay(root: str) -> int:
    paths = RunPaths(Path(root))
    lock = RunLock(paths.lock).acquire(wait_seconds=5)  # noqa: F841 (held until this process ends)
    stall_after = int(os.environ.get("FAKE_STALL_AFTER", "0"))
    done = [e.get("step", 0) for e in read_events(paths.events) if e.get("type") == "step"]
    resume_from = max(done) if done else 0
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    status = RunStatus(state="running", pid=os.getpid(), started=time.time(), step=resume_from)
    write_status(paths.status, status)
    delay = float(os.environ.get("FAKE_STEP_DELAY", "0.05"))
    with EventWriter(paths.events) as writer:
        for event in (json.loads(line) for line in CANNED.read_text().splitlines()):
            kind = event.pop("type")
            for key in ("v", "time"):
                event.pop(key, None)
            if kind == "start":
                event.update(run_id=paths.run_id, pid=os.getpid(), resumed_from=resume_from or None)
            if kind in ("step", "eval", "checkpoint") and event["step"] <= resume_from:
                continue
            writer.emit(kind, **event)
            if kind == "step":
                status.step, status.max_steps, status.epoch = event["step"], event["max_steps"], event["epoch"]
                write_status(paths.status, status)
                print(f"step {event['step']}/{event['max_steps']} loss {event['loss']}", flush=True)
                time.sleep(delay)
                if stall_after and event["step"] == stall_after:
                    writer.emit("stalled", seconds_since_step=95.0, median_step_s=1.5)
                    hang_until = time.time() + 30  # bounded: a test that fails early leaves no process behind
                    while not stopping and time.time() < hang_until:
                        time.sleep(0.05)
            if stopping:
                status.state = "stopped"
                writer.emit("status", state="stopped", error=None, advice=[])
                write_status(paths.status, status)
                print("stopped on request", flush=True)
                return 0
        status.state = "finished"
        writer.emit("status", state="finished", error=None, advice=[])
        write_status(paths.status, status)
    return 0


def stop(args: argparse.Namespace) -> int:
    paths = RunPaths.of(runs_dir(args.config), args.run)
    status = read_status(paths.status)
    if status is None or not status.pid:
        print(f"error: run {args.run} is not running", file=sys.stderr)
        return 2
    os.kill(status.pid, signal.SIGTERM)
    print(f"asked run {args.run} (pid {status.pid}) to stop")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    paths = RunPaths.of(runs_dir(args.config), args.run)
    for done in range(1, 9):
        print(f"tuned answers {done}/8", flush=True)
        time.sleep(0.2)  # slower than the app's log poll, so progress is seen before the end (it collapses)
    target = paths.eval / "20261126-080000"
    shutil.copytree(FIXTURE_RESULT, target)
    print(f"results saved in {target}")
    return 0


def serve(args: argparse.Namespace) -> int:
    """Keep ``status.json`` as ``carexpert serve`` does (ready, counting requests) until SIGTERM; then stopped."""
    from carexpert.serve.status import ServerStatus, stop_server, write_server_status

    if args.stop:
        print(f"stopped the server at {stop_server(args.state_dir).url}")
        return 0
    if os.environ.get("FAKE_SERVE_FAIL"):
        print("error: port 8000 on 127.0.0.1 is in use", file=sys.stderr)
        return 2
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    status = ServerStatus(state="ready", pid=os.getpid(), url="http://127.0.0.1:8000/v1", host="127.0.0.1",
                          port=8000, model="base" if args.base else (args.run or "newest"), capacity=32)
    deadline = time.time() + 60
    while not stopping and time.time() < deadline:
        status.requests += 1
        status.completed, status.tokens, status.tokens_per_second = status.requests, status.requests * 40, 41.0
        write_server_status(args.state_dir, status)
        time.sleep(0.1)
    status.state = "stopped"
    write_server_status(args.state_dir, status)
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "_replay":
        return replay(sys.argv[2])
    parser = argparse.ArgumentParser(prog="fake_carexpert")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train")
    train.add_argument("--config")
    train.add_argument("--resume")
    train.add_argument("--detach", action="store_true")
    train.add_argument("--force", action="store_true")
    train.add_argument("--yes", action="store_true")
    train.add_argument("--quick", action="store_true")
    runs = commands.add_parser("runs")
    runs.add_argument("action", choices=["stop"])
    runs.add_argument("run")
    runs.add_argument("--config")
    ev = commands.add_parser("eval")
    ev.add_argument("run")
    ev.add_argument("--config")
    served = commands.add_parser("serve")
    served.add_argument("run", nargs="?")
    served.add_argument("--base", action="store_true")
    served.add_argument("--stop", action="store_true")
    served.add_argument("--state-dir", default="serve")
    served.add_argument("--config")
    args = parser.parse_args()
    if args.command == "serve":
        return serve(args)
    if args.command == "train":
        return start(args)
    if args.command == "runs":
        return stop(args)
    return evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
