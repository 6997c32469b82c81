"""The training process: ``python -m carexpert.training.worker --run-dir DIR [--resume] [--force]``.

Started by ``carexpert.runs.launch`` (directly, or once per GPU through
``torch.distributed.run``), with stdout/stderr already going to ``train.log``. The
stop handler is installed before anything heavy is imported, so a SIGTERM that
arrives while the model loads is honoured too.

Exit status: 0 finished or stopped, 1 failed, 2 a problem the user must fix. carexpert's
own log lines reach ``train.log`` through ``run``'s file handler; libraries' warnings
and anything unexpected reach it through stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carexpert.training.signals import GracefulStop


def main(argv: list[str] | None = None) -> int:
    stop = GracefulStop().install()
    parser = argparse.ArgumentParser(prog="carexpert-train-worker")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--config", type=Path, default=None, help="default: the run's frozen config.toml")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--lock-fd", type=int, default=None, help="descriptor of the run lock, from the launcher")
    parser.add_argument("--lock-inherited", action="store_true", help="the launcher holds the run lock")
    args = parser.parse_args(argv)

    from carexpert.config import load_config
    from carexpert.errors import UserError
    from carexpert.runs.lock import RunLock
    from carexpert.runs.paths import RunPaths
    from carexpert.training.entry import run

    run_paths = RunPaths(args.run_dir)
    lock = RunLock.adopt(run_paths.lock, args.lock_fd) if args.lock_fd is not None else None
    try:
        try:
            config = load_config(args.config or run_paths.config)
            drill = _fault_drill()
        except UserError as error:
            _record_failure(run_paths, error)  # run() records its own failures; this one comes before it
            raise
        outcome = run(config, run_paths, resume=args.resume, force=args.force, stop=stop, lock=lock,
                      lock_inherited=args.lock_inherited, callbacks=drill)
    except UserError as error:
        print(f"error: {error.render()}", file=sys.stderr)
        return 2
    return 0 if outcome.state in ("finished", "stopped") else 1


def _fault_drill() -> list:
    """``CAREXPERT_FAULT``'s callback for this rank (``carexpert.training.faults``), usually none."""
    import os

    from carexpert.training.faults import fault_callbacks

    return fault_callbacks(int(os.environ.get("RANK", 0)))


def _record_failure(run_paths, error) -> None:
    import os

    from carexpert.runs.status import RunStatus, read_status, write_status

    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size > 1:  # the supervisor writes the status of a several-GPU run
        from carexpert.training.rank_failures import RankFailure, record_failure

        record_failure(run_paths, RankFailure(int(os.environ.get("RANK", 0)), world_size, error.render(),
                                              pid=os.getpid()))
        return
    status = read_status(run_paths.status) or RunStatus()
    status.state, status.error = "failed", error.render()
    write_status(run_paths.status, status)


if __name__ == "__main__":
    sys.exit(main())
