"""Trainer callbacks: events and status, trustworthy checkpoints, graceful stop.

They run on every rank; only the reporter of rank 0 writes anything. Collective
calls (the stop vote, the barrier before marking a checkpoint) are made by all
ranks at the same points, so they cannot deadlock.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from carexpert.config import Config
from carexpert.runs import checkpoints
from carexpert.training import guard
from carexpert.training.reporter import Reporter
from carexpert.training.signals import GracefulStop

log = logging.getLogger("carexpert.training")


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _ram_bytes() -> int | None:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except Exception:  # noqa: BLE001 - psutil missing or /proc unreadable: RAM is optional telemetry
        return None


class EventsCallback(TrainerCallback):
    """step / eval events and status progress, with throughput and ETA.

    Throughput and ETA count training time only: the clock restarts after an
    evaluation or a checkpoint save, so those pauses do not read as a slow step.
    """

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.trainer: Any = None  # set after the Trainer exists; read for log_extras
        self.step_seconds: deque[float] = deque(maxlen=50)
        self._mark: float | None = None
        self._window_seconds = 0.0

    def _restart_clock(self) -> None:
        self._mark = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self._restart_clock()
        self.reporter.progress(state.global_step, state.max_steps, state.epoch)
        self.reporter.set_state("running")

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        if self._mark is not None:
            self.step_seconds.append(now - self._mark)
            self._window_seconds += now - self._mark
        self._mark = now
        self.reporter.progress(state.global_step, state.max_steps, state.epoch)

    def eta_seconds(self, step: int, max_steps: int) -> float | None:
        if not self.step_seconds:
            return None
        recent = list(self.step_seconds)[1:] or list(self.step_seconds)  # the first step carries warm-up
        return statistics.median(recent) * max(max_steps - step, 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or any(key.startswith("eval_") for key in logs):
            return
        elapsed, self._window_seconds = max(self._window_seconds, 1e-9), 0.0
        extras = getattr(self.trainer, "log_extras", {}) or {}
        tokens, samples = extras.get("tokens"), extras.get("samples")
        event = self.reporter.emit(
            "step", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch, loss=logs.get("loss"),
            lr=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
            tokens_per_s=tokens / elapsed if tokens is not None else None,
            samples_per_s=samples / elapsed if samples is not None else None, tokens=tokens, train_s=elapsed,
            eta_s=self.eta_seconds(state.global_step, state.max_steps), gpus=extras.get("gpus", []),
            ram_bytes=_ram_bytes())
        if event:
            log.info("step %d/%d loss %.4f lr %.3g tokens/s %.0f", state.global_step, state.max_steps,
                     logs.get("loss", float("nan")), logs.get("learning_rate") or 0.0, event["tokens_per_s"] or 0.0)
        self._restart_clock()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        val_loss = (metrics or {}).get("eval_loss")
        if val_loss is not None:
            perplexity = math.exp(val_loss) if val_loss < 50 else float("inf")
            if self.reporter.emit("eval", step=state.global_step, val_loss=val_loss, perplexity=perplexity):
                log.info("eval at step %d: val_loss %.4f perplexity %.2f", state.global_step, val_loss, perplexity)
        self._restart_clock()

    def on_save(self, args, state, control, **kwargs):
        self._restart_clock()


class CheckpointCallback(TrainerCallback):
    """Marks each saved checkpoint complete, rotates old ones, reports it."""

    def __init__(self, reporter: Reporter, *, config: Config, fingerprint: str, plan: dict[str, Any], keep: int):
        self.reporter, self.config, self.fingerprint, self.plan, self.keep = reporter, config, fingerprint, plan, keep

    def on_save(self, args, state, control, **kwargs):
        if _distributed():
            torch.distributed.barrier()  # every rank's files (rng states) are written before the marker
        if not state.is_world_process_zero:
            return
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        guard.write_marker(path, config=self.config, fingerprint=self.fingerprint, step=state.global_step,
                           plan=self.plan)
        checkpoints.rotate(Path(args.output_dir), self.keep)
        self.reporter.emit("checkpoint", step=state.global_step, path=str(path))
        log.info("checkpoint saved: %s", path)


class TimeLimitCallback(TrainerCallback):
    """Ends training at the first step boundary after ``train.max_minutes`` of training.

    The run then validates and saves its adapter as a finished run does; a notice says at
    which step the limit ended it. Ranks agree on the step with one all-reduce (MAX), so a
    rank whose clock crossed the limit a step early cannot leave the others waiting.
    """

    def __init__(self, minutes: float, reporter: Reporter):
        self.seconds, self.reporter = minutes * 60.0, reporter
        self.started = time.monotonic()
        self.done = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.done:
            return
        over = time.monotonic() - self.started > self.seconds
        if _distributed():
            flag = torch.tensor([1 if over else 0], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            over = bool(flag.item())
        if over:
            self.done = True
            control.should_training_stop = True
            control.should_save = True
            message = (f"time limit: stopped after step {state.global_step} of {state.max_steps} "
                       f"(train.max_minutes = {self.seconds / 60:g})")
            if self.reporter.emit("notice", message=message):
                log.warning("%s", message)


class StopCallback(TrainerCallback):
    """Turns a stop request into a checkpoint and a clean exit at the next step boundary.

    With several ranks, the request (seen by whichever rank got the signal) is agreed
    on with one all-reduce per step, so every rank stops at the same step.
    """

    def __init__(self, stop: GracefulStop, reporter: Reporter):
        self.stop, self.reporter = stop, reporter
        self.stopping = False

    def _agreed(self, device: torch.device) -> bool:
        if not _distributed():
            return self.stop.requested
        flag = torch.tensor([1 if self.stop.requested else 0], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopping or not self._agreed(args.device):
            return
        self.stopping = True
        self.stop.request("another rank's request")  # every rank then skips what follows training alike
        control.should_save = True
        control.should_training_stop = True
        self.reporter.set_state("stopping")
        log.info("stop requested (%s): saving a checkpoint at step %d", self.stop.signal_name or "request",
                 state.global_step)


MIN_STALL_SECONDS = 60.0  # never call a pause shorter than this a stall (first evals, slow saves)


class StallWatchdog(TrainerCallback):
    """Emits ``stalled`` when no step, eval batch or save has come for ``factor`` x the median step.

    A thread checks once a second, so a hung collective or a stuck filesystem is
    reported even though the training loop itself is blocked. One event per stall.
    """

    def __init__(self, reporter: Reporter, factor: float):
        self.reporter, self.factor = reporter, factor
        self.step_seconds: deque[float] = deque(maxlen=50)
        self._last_beat = time.monotonic()
        self._last_step: float | None = None
        self._reported = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self, step_done: bool = False) -> None:
        now = time.monotonic()
        if step_done and self._last_step is not None:
            self.step_seconds.append(now - self._last_step)
        if step_done:
            self._last_step = now
        self._last_beat, self._reported = now, False

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.reporter.enabled:
            return
        self._beat()
        self._thread = threading.Thread(target=self._watch, name="carexpert-stall-watchdog", daemon=True)
        self._thread.start()

    def on_step_end(self, args, state, control, **kwargs):
        self._beat(step_done=True)

    def on_prediction_step(self, args, state, control, **kwargs):
        self._beat()

    def on_save(self, args, state, control, **kwargs):
        self._beat()
        self._last_step = time.monotonic()  # the save is not part of the next step

    def on_evaluate(self, args, state, control, **kwargs):
        self._beat()
        self._last_step = time.monotonic()

    def on_train_end(self, args, state, control, **kwargs):
        self.stop()

    def stop(self) -> None:
        """End the watch (also when training raised and on_train_end never came)."""
        self._done.set()

    def threshold(self) -> float | None:
        if len(self.step_seconds) < 2:
            return None
        median = statistics.median(self.step_seconds)
        return max(self.factor * median, MIN_STALL_SECONDS)

    def _watch(self) -> None:
        while not self._done.wait(1.0):
            limit = self.threshold()
            quiet = time.monotonic() - self._last_beat
            if limit is not None and quiet > limit and not self._reported:
                self._reported = True
                median = statistics.median(self.step_seconds)
                self.reporter.emit("stalled", seconds_since_step=quiet, median_step_s=median)
                log.warning("no progress for %.0f s (median step %.2f s)", quiet, median)
