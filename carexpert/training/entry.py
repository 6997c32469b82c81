"""``run(config, run_paths)``: one training run in this process, start to finish.

The order of things, and why:

1. lock the run folder (one trainer per run) — before anything is written;
2. ``start`` event, status "pending"; tokenizer and data (a bad dataset fails here,
   before a long model load);
3. on resume: the newest *complete* checkpoint and the resume guard (config and data
   unchanged, or ``force``);
4. the plan (precision, optimizer, checkpointing, micro-batch for this machine), the
   model, the ``summary`` event;
5. Trainer.train — events from callbacks, a stop request ends it at a step boundary
   with a checkpoint;
6. the final adapter, written to a temporary folder and renamed into ``adapter/``.

Every failure ends with status "failed" and a plain message (full traceback in
``train.log``); running out of GPU memory adds advice computed from the run's own
settings. A ``UserError`` (missing model or dataset, resume refused) is raised
again for the CLI to print (exit 2); other failures are returned in the outcome.
In a run on several GPUs a failing rank records its failure (``rank_failures``) and
the supervisor writes the final status naming the root cause (``_end_failed``).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.runs import checkpoints
from carexpert.runs.lock import RunLock, lock_is_held
from carexpert.runs.paths import RunPaths
from carexpert.training import guard
from carexpert.training.advice import oom_advice
from carexpert.training.reporter import Reporter
from carexpert.training.signals import GracefulStop

log = logging.getLogger("carexpert.training")


@dataclass
class RunOutcome:
    """How a run ended."""

    state: str  # finished, stopped or failed
    step: int = 0
    adapter_dir: str | None = None
    error: str | None = None
    advice: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> Ranks:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                   int(os.environ.get("WORLD_SIZE", 1)))


def run(config: Config, run_paths: RunPaths, on_event: Callable[[dict[str, Any]], None] | None = None,
        resume: bool = False, *, force: bool = False, callbacks: Sequence[Any] = (),
        stop: GracefulStop | None = None, lock: RunLock | None = None, lock_inherited: bool = False) -> RunOutcome:
    """Train one run in this process (see the module docstring for the order of things).

    ``on_event`` receives every event as it is written; ``callbacks`` are extra
    ``TrainerCallback``s. The run folder's lock is taken here, unless ``lock`` is one
    handed over by the launcher (released when the run ends) or ``lock_inherited``
    says a launcher process holds it for us.
    """
    ranks = Ranks.from_env()
    lock = lock or _take_lock(run_paths, ranks, lock_inherited)
    own_stop = stop is None
    stop = (stop or GracefulStop()).install() if own_stop else stop
    handler = _log_to_file(run_paths) if ranks.rank == 0 else None
    reporter = Reporter(run_paths, enabled=ranks.rank == 0, on_event=on_event)
    try:
        return _run(config, run_paths, reporter, ranks, resume=resume, force=force, callbacks=callbacks, stop=stop)
    finally:
        reporter.close()
        if own_stop and stop is not None:
            stop.restore()
        if handler:
            logging.getLogger("carexpert").removeHandler(handler)
            handler.close()
        if lock:
            lock.close()


def _take_lock(run_paths: RunPaths, ranks: Ranks, inherited: bool) -> RunLock | None:
    if inherited:
        if not lock_is_held(run_paths.lock):
            raise UserError("the run's lock was not handed over by its launcher", where=str(run_paths.root),
                            fix="start runs with 'carexpert train'")
        return None
    return RunLock(run_paths.lock).acquire() if ranks.rank == 0 else None


def _log_to_file(run_paths: RunPaths) -> logging.Handler:
    run_paths.root.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_paths.log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("carexpert")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _run(config, run_paths, reporter: Reporter, ranks: Ranks, *, resume, force, callbacks, stop) -> RunOutcome:
    from carexpert.config import write_frozen_config

    checkpoint = None
    if resume:
        checkpoint, skipped = checkpoints.last_complete_checkpoint(run_paths.checkpoints)
        for path in skipped:
            reporter.emit("notice", message=f"{path.name} is incomplete (cut short while saving): not used")
    elif ranks.rank == 0:
        write_frozen_config(run_paths.config, config)
    resumed_from = checkpoints.checkpoint_step(checkpoint) if checkpoint else None
    reporter.emit("start", run_id=run_paths.run_id, config=config.to_dict(), pid=os.getpid(),
                  host=socket.gethostname(), world_size=ranks.world_size, resumed_from=resumed_from)
    reporter.set_state("pending")
    if resume and checkpoint is None:
        reporter.emit("notice", message="no complete checkpoint yet: starting from step 0")
    session = None
    try:
        from carexpert.training.session import TrainingSession

        session = TrainingSession(config, run_paths, reporter, ranks, stop=stop, extra_callbacks=callbacks)
        session.prepare()
        if checkpoint is not None:
            data, plan = session.data, session.plan
            assert data is not None and plan is not None  # prepare() made both
            changed = guard.check_resume(checkpoint, config, data.fingerprint, force=force, optimizer=plan.optimizer)
            if changed:
                reporter.emit("notice", message="resuming with changes (--force): " + "; ".join(changed))
                if ranks.rank == 0:
                    write_frozen_config(run_paths.config, config)
        if stop.requested:
            reporter.set_state("stopped")
            return RunOutcome("stopped", resumed_from or 0)
        session.load_model()
        step = session.train(checkpoint)
        if stop.requested:
            reporter.set_state("stopped")
            return RunOutcome("stopped", step)
        adapter = session.save_adapter()
        reporter.set_state("finished")
        return RunOutcome("finished", step, str(adapter) if adapter else None)
    except UserError as error:
        log.error("%s", error.render())
        _end_failed(reporter, ranks, error.render(), step=reporter.status.step)
        raise
    except BaseException as error:  # noqa: BLE001 - every way out must leave an honest status
        return _failed(error, config, reporter, ranks, session)


def _end_failed(reporter: Reporter, ranks: Ranks, message: str, *, step: int,
                advice: list[dict[str, Any]] | None = None) -> None:
    """Say the run failed: at once on one GPU; on several, as this rank's record for the supervisor.

    The other ranks fail a moment later because of this one (or this one because of
    them), so only the supervisor, which outlives them all, can name the root cause.
    Rank 0 hands ``status.json``'s pid to it, so the run does not read as dead meanwhile;
    without a supervisor (a launch across hosts), rank 0 writes what the records say so far.
    """
    if ranks.world_size <= 1:
        reporter.set_state("failed", error=message, advice=advice)
        return
    from carexpert.training.rank_failures import RankFailure, record_failure
    from carexpert.training.supervisor import SUPERVISOR_PID_ENV

    record_failure(reporter.run, RankFailure(ranks.rank, ranks.world_size, message, step, pid=os.getpid(),
                                             advice=list(advice or [])))
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if supervisor.isdigit():
        reporter.hand_over(int(supervisor))
    elif reporter.enabled:  # launched without carexpert's supervisor (several hosts): say what is known now
        import psutil

        from carexpert.training.rank_failures import describe, read_failures

        started = psutil.Process().create_time() - 60  # nobody cleared ranks/: skip an earlier attempt's records
        failures = [f for f in read_failures(reporter.run) if f.time >= started]
        reporter.set_state("failed", error=describe(failures, ranks.world_size), advice=advice)


def _failed(error: BaseException, config, reporter: Reporter, ranks: Ranks, session) -> RunOutcome:
    import torch

    trainer = session.trainer if session is not None else None
    step = trainer.state.global_step if trainer is not None else reporter.status.step
    plan = session.plan if session is not None else None
    advice: list[dict[str, Any]] = []
    if isinstance(error, torch.OutOfMemoryError):
        log.exception("out of GPU memory")
        advice = oom_advice(config, micro_batch=plan.micro_batch if plan else None,
                            grad_accum=plan.grad_accum if plan else None,
                            gradient_checkpointing=plan.gradient_checkpointing if plan else None)
        shape = f" (micro-batch {plan.micro_batch} x up to {config.data.max_length} tokens)" if plan else ""
        message = f"out of GPU memory after {step} completed steps{shape}; the last checkpoint is intact"
    elif isinstance(error, OSError) and error.errno == errno.ENOSPC:
        log.exception("disk full")
        removed = checkpoints.discard_incomplete(reporter.run.checkpoints) if reporter.enabled else []
        cut = f"; the half-written {', '.join(p.name for p in removed)} was removed" if removed else ""
        message = (f"disk full while writing at step {step} ({error.filename or 'the run folder'}){cut}; "
                   "earlier checkpoints are intact — free space, then 'carexpert runs resume'")
    elif isinstance(error, KeyboardInterrupt):
        log.warning("interrupted")
        message = f"interrupted at step {step} before a checkpoint; resume continues from the previous one"
        reporter.set_state("stopped", error=message)
        return RunOutcome("stopped", step, error=message)
    else:
        log.exception("training failed")
        message = f"{type(error).__name__}: {error} (full traceback in train.log)"
    _end_failed(reporter, ranks, message, step=step, advice=advice)
    return RunOutcome("failed", step, error=message, advice=advice)
