"""The supervisor of a run on several GPUs: ``python -m carexpert.training.supervisor --processes N ...``.

``carexpert.runs.launch`` starts it detached in place of the single worker. It holds
the run's lock, starts one worker per GPU through torch.distributed.run's elastic agent
— in this process, so it learns how each rank exited — and is the last to leave. When
a rank fails, the others get ``SHUTDOWN_GRACE_S`` to follow (they usually fail at their
next collective); then the supervisor kills the stragglers — a hung rank ignores
SIGTERM, and the agent would wait 30 s — and writes the run's one final ``failed`` status,
leading with the root cause (``rank_failures``): whatever ended the ranks, a run is
never left "running" with nobody behind it. While training goes well it does nothing:
rank 0 reports, and ``carexpert runs stop`` signals rank 0, which stops every rank at
the same step.

The ranks' environment (set here, once, for every launch):

- ``NCCL_NVLS_ENABLE=0`` always: NVLink SHARP multicast can put a shared host's GPUs out
  of service, and the LoRA gradients are too small to gain from it;
- ``TORCH_NCCL_ASYNC_ERROR_HANDLING=3`` unless set: a collective that fails or outlives
  ``train.dist_timeout_s`` tears its rank down (the process exits) instead of hanging;
- ``TORCH_ELASTIC_SHUTDOWN_TIMEOUT`` unless set: how long the agent lets the other ranks
  exit after one failed (torch 2.13 reads it; older versions wait 30 s);
- ``CAREXPERT_SUPERVISOR_PID``: a failing rank 0 hands ``status.json``'s pid to this
  process, so the run reads as alive until its final status is written.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from carexpert.runs.lock import RunLock
from carexpert.runs.paths import RunPaths
from carexpert.runs.status import read_status
from carexpert.training import rank_failures

WORKER_MODULE = "carexpert.training.worker"
SHUTDOWN_GRACE_S = 5
MONITOR_INTERVAL_S = 0.5
SUPERVISOR_PID_ENV = "CAREXPERT_SUPERVISOR_PID"
WHY_KILLED = {
    "SIGKILL": "out of host memory, or ended by the launcher",
    "SIGABRT": "NCCL tears a rank down when a collective fails or times out",
    "SIGSEGV": "a crash in native code",
    "SIGBUS": "a crash in native code",
    "SIGTERM": "asked to stop",
}


def rank_environment(environ: Mapping[str, str], supervisor_pid: int) -> dict[str, str]:
    """The variables this module sets for the ranks (see the module docstring)."""
    return {
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": environ.get("TORCH_NCCL_ASYNC_ERROR_HANDLING", "3"),
        "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_GRACE_S)),
        SUPERVISOR_PID_ENV: str(supervisor_pid),
    }


def launcher_arguments(processes: int, worker_args: list[str]) -> list[str]:
    """torch.distributed.run's command line for ``processes`` workers on this host."""
    return ["--standalone", f"--nproc_per_node={processes}", "--max_restarts=0",
            f"--monitor_interval={MONITOR_INTERVAL_S}", "-m", WORKER_MODULE, *worker_args]


def how_it_ended(exitcode: int) -> str:
    """A rank's exit, for a rank that recorded no error."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = WHY_KILLED.get(name)
        return f"was killed by {name}" + (f" ({why})" if why else "")
    return f"exited with status {exitcode} without recording an error"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carexpert-train-supervisor",
                                     description="the other arguments go to every worker")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--lock-fd", type=int, default=None, help="descriptor of the run lock, from the launcher")
    args, worker_args = parser.parse_known_args(argv)
    run_paths = RunPaths(args.run_dir)
    lock = RunLock.adopt(run_paths.lock, args.lock_fd) if args.lock_fd is not None else None
    worker_args = ["--run-dir", str(run_paths.root), *worker_args] + (["--lock-inherited"] if lock else [])
    try:
        return supervise(run_paths, args.processes, worker_args)
    finally:
        if lock:
            lock.close()


def supervise(run_paths: RunPaths, processes: int, worker_args: list[str]) -> int:
    """Run the ranks to their end; write the final status when they could not. Exit status 0 or 1."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    rank_failures.clear(run_paths)
    os.environ.update(rank_environment(os.environ, os.getpid()))
    print(f"carexpert supervisor: starting {processes} ranks", flush=True)
    ended: dict[int, str] = {}
    stopped_by: str | None = None
    launcher_error: str | None = None
    reaper = StragglerReaper(run_paths, SHUTDOWN_GRACE_S)
    reaper.start()
    try:
        run(parse_args(launcher_arguments(processes, worker_args)))
    except ChildFailedError as failed:
        ended = {int(rank): (f"was killed {SHUTDOWN_GRACE_S} s after the first failure, still not answering"
                             if failure.pid in reaper.killed else how_it_ended(failure.exitcode))
                 for rank, failure in failed.failures.items()}
    except SignalException as received:  # stopped while no rank reported yet (status.pid was this process)
        stopped_by = getattr(received.sigval, "name", str(received.sigval))
    except Exception as error:  # noqa: BLE001 - a rendezvous or launcher failure must still end the run honestly
        launcher_error = f"{type(error).__name__}: {error}"
    finally:
        reaper.stop()
    return conclude(run_paths, processes, ended=ended, stopped_by=stopped_by, launcher_error=launcher_error)


class StragglerReaper(threading.Thread):
    """Kills the ranks still alive ``grace`` seconds after the first rank recorded a failure.

    Only this process's own children (the ranks the agent started) are killed. The
    agent notices their exit and returns at once.
    """

    def __init__(self, run_paths: RunPaths, grace: float, poll: float = 0.5):
        super().__init__(name="carexpert-straggler-reaper", daemon=True)
        self.run_paths, self.grace, self.poll = run_paths, grace, poll
        self._done = threading.Event()
        self.killed: set[int] = set()

    def stop(self) -> None:
        self._done.set()

    def run(self) -> None:
        first_seen: float | None = None
        while not self._done.wait(self.poll):
            if first_seen is None:
                first_seen = time.monotonic() if rank_failures.read_failures(self.run_paths) else None
            elif time.monotonic() - first_seen >= self.grace:
                self._kill_children()
                return

    def _kill_children(self) -> None:
        import psutil

        for child in psutil.Process().children():
            try:
                print(f"carexpert supervisor: rank process {child.pid} still running {self.grace:.0f} s after a "
                      "rank failed: killing it", flush=True)
                child.kill()
                self.killed.add(child.pid)
            except psutil.NoSuchProcess:
                continue


def conclude(run_paths: RunPaths, processes: int, *, ended: dict[int, str], stopped_by: str | None = None,
             launcher_error: str | None = None) -> int:
    """Write the final status unless rank 0 did; the exit status of the run (0 finished/stopped, 1 failed)."""
    from carexpert.training.reporter import Reporter

    status = read_status(run_paths.status)
    state = status.state if status else None
    failures = rank_failures.read_failures(run_paths)
    if state in ("finished", "stopped"):  # rank 0 ended it: its checkpoint or adapter is complete
        if failures or ended:
            silent = {rank: how for rank, how in ended.items() if rank not in {f.rank for f in failures}}
            _notice(run_paths, f"after rank 0 had {state} the run: "
                    + (rank_failures.describe(failures, processes, ended=silent) if failures else
                       "; ".join(f"rank {r} {how}" for r, how in sorted(ended.items()))))
        return 0
    reporter = Reporter(run_paths)
    try:
        if stopped_by and not failures:
            message = (f"stopped ({stopped_by}) before training began" if state == "pending" else
                       f"the supervisor was stopped ({stopped_by}) at step {reporter.status.step}: the ranks were "
                       "ended without a new checkpoint; resume continues from the last one")
            reporter.set_state("stopped", error=message)
            print(f"carexpert supervisor: {message}", flush=True)
            return 0
        silent = {rank: how for rank, how in ended.items() if rank not in {f.rank for f in failures}}
        message = rank_failures.describe(failures, processes, ended=silent)
        if launcher_error and not failures:
            message = f"torch.distributed.run failed: {launcher_error}; {message}"
        advice = next((f.advice for f in failures if f.advice), [])
        reporter.set_state("failed", error=message, advice=advice)
        print(f"carexpert supervisor: run failed: {message}", flush=True)
        return 1
    finally:
        reporter.close()


def _notice(run_paths: RunPaths, message: str) -> None:
    from carexpert.runs.events import EventWriter

    with EventWriter(run_paths.events) as writer:
        writer.emit("notice", message=message)
    print(f"carexpert supervisor: {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
