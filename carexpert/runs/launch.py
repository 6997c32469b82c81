"""Start a training process that outlives the terminal that started it.

The child runs in a new session (``start_new_session=True``): a closed terminal or a
dropped SSH link sends SIGHUP to the terminal's session, not to ours. Its stdin is
``/dev/null`` and its stdout/stderr are appended to ``run/train.log`` — never a pipe,
which would hang the trainer once nobody reads it. The run folder's lock is taken
here and handed to the child through an inherited descriptor, so two launches of
the same run cannot race.

With ``processes > 1`` the child is ``carexpert.training.supervisor`` instead: it keeps
the lock and starts the same worker once per GPU through ``torch.distributed.run``
(the launcher accelerate uses underneath): DDP, rank 0 writes the events, and when a
rank fails the supervisor ends the others and writes the final status. For a model
that does not fit one GPU, see ``docs/training.md`` (FSDP with QLoRA).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from carexpert.runs.lock import RunLock
from carexpert.runs.paths import RunPaths, mark_run_folder
from carexpert.runs.status import RunStatus, read_status, reserve_status_space, write_status

WORKER_MODULE = "carexpert.training.worker"
SUPERVISOR_MODULE = "carexpert.training.supervisor"


def worker_command(run: RunPaths, *, config_path: str | os.PathLike | None = None, resume: bool = False,
                   force: bool = False, processes: int = 1, lock_fd: int | None = None) -> list[str]:
    """The command line of a training process for ``run``.

    ``lock_fd``: the inherited descriptor that holds the run's lock. One process adopts
    it (and releases it the moment the run ends): the worker, or with several
    processes the supervisor, whose workers only check that it is held.
    """
    args = ["--run-dir", str(run.root.resolve())]
    if config_path is not None:
        args += ["--config", str(Path(config_path).resolve())]
    if resume:
        args.append("--resume")
    if force:
        args.append("--force")
    if lock_fd is not None:
        args += ["--lock-fd", str(lock_fd)]
    if processes > 1:
        return [sys.executable, "-m", SUPERVISOR_MODULE, f"--processes={processes}", *args]
    return [sys.executable, "-m", WORKER_MODULE, *args]


def start_training_process(run: RunPaths, *, config_path: str | os.PathLike | None = None, resume: bool = False,
                           force: bool = False, processes: int = 1, lock_wait_seconds: float = 0.0
                           ) -> subprocess.Popen:
    """Lock the run, start its trainer detached, record it as pending; returns the child.

    Raises ``RunLockedError`` (a UserError) when another trainer holds the run;
    ``lock_wait_seconds`` gives a previous trainer that is just exiting time to let go.
    """
    run.root.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run.lock).acquire(wait_seconds=lock_wait_seconds)
    try:
        mark_run_folder(run)
        reserve_status_space(run.root)  # best effort: on a full disk the run fails on its own writes
        assert lock.fd is not None  # acquire() returned: the lock is held through this descriptor
        command = worker_command(run, config_path=config_path, resume=resume, force=force, processes=processes,
                                 lock_fd=lock.fd)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(run.log, "ab") as log, open(os.devnull, "rb") as devnull:
            child = subprocess.Popen(command, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, close_fds=True, pass_fds=(lock.fd,))
        lock.record_holder(child.pid)
        status = read_status(run.status) or RunStatus()  # a resumed run keeps its step and start time
        status.state, status.pid, status.host = "pending", child.pid, socket.gethostname()
        status.error, status.advice = None, []
        write_status(run.status, status)
    finally:
        lock.close()  # the child keeps the lock through its inherited descriptor
    return child
