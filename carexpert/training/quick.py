"""The quick profile: a short run sized to finish in about 15 minutes on this machine.

A newcomer without a GPU should see the adapter learn something before lunch, not
after a night. Two parts:

1. ``quick_settings``: on a CPU, the settings that make a step cheap — unquantized fp32
   weights (4-bit layers on a CPU are several times slower, see ``plan``), adamw_torch,
   no gradient checkpointing, one micro-batch per step (more updates for the same
   tokens), a small validation set checked only at the end, one retrieved passage per
   prompt, and a learning rate for a short schedule with a 10% warm-up. On a GPU the
   config's precision, quantization and optimizer stay.
2. ``size_quick``: the micro-batch and number of steps, from the timing probe measured *with
   those settings* on this machine and the real data's mean example length — never a constant,
   so the profile stays right when the data or the machine changes. The budget is split
   into start-up (``timing.run_time``: measured data build and model load plus an
   allowance), the final validation pass (measured forward speed) and training;
   ``QUICK_MARGIN`` keeps a share for a busier machine, and ``train.max_minutes`` stops
   training when the budget is spent however busy it got. The probe is reused for at most
   ``QUICK_PROBE_MAX_AGE`` (the estimate shown, then the start), since the load of a shared
   machine, and with it the speed, changes over the day.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from carexpert.errors import UserError
from carexpert.training.timing import DataSize, Probe, RunTime, duration_words, run_time, total_steps

QUICK_BUDGET_SECONDS = 15 * 60
QUICK_MARGIN = 0.85  # plan for 85% of the budget: the probe's speed is a few steps on a shared machine
MIN_QUICK_EXAMPLES = 8  # fewer examples teach nothing measurable: refuse and say why
MIN_QUICK_UPDATES = 12  # optimizer steps a quick run gets at least (smaller micro-batches when needed)
# Twice the 5e-4 of the CPU record in docs/evaluation.md (16 steps of 2 sequences took the training
# loss from 2.65 to 2.11); a schedule of a few dozen steps needs the larger rate.
# benchmarks/quick_lr.py compares rates on the same batches.
QUICK_LEARNING_RATE = 1e-3
QUICK_WARMUP = 0.1
# 1% of the non-test pairs (15 records of the builtin set) for the validation loss: the full 10% cost a
# quarter of the budget on the shared 2-core machine. Only train/validation move; the test split,
# which evaluation uses, is drawn first and stays the same (dataset.splits).
QUICK_VALIDATION_FRACTION = 0.01
# One retrieved passage per prompt instead of three: measured on the builtin set, the mean
# example shrinks from 508 to 319 tokens, so the same minutes train on 1.6x the examples.
# Evaluation and chat read the run's own config, so they prompt the adapter the same way.
QUICK_TOP_K = 1
LIMIT_RESERVE = 1.5  # start-up and final validation may take half as long again on a busier machine
STOP_STEPS = 2       # the time limit stops at a step boundary: up to a step late, slower under load
QUICK_PROBE_MAX_AGE = 600.0  # a shared machine's load changes: size from a probe at most 10 minutes old


def quick_profile(config: Any, *, cuda: bool, reprobe: bool = False, progress: Any = None) -> tuple[Any, RunTime]:
    """The quick profile of ``config`` on this machine: probe with its settings, then size it. The probe's
    own minutes (the data build and a few steps, when nothing is cached) come out of the budget."""
    import time

    from carexpert.training.probe import probe_for

    started = time.monotonic()
    fixed = quick_settings(config, cuda=cuda)
    probe, data, _cached = probe_for(fixed, reprobe=reprobe, max_age_seconds=QUICK_PROBE_MAX_AGE, progress=progress)
    return size_quick(fixed, data, probe, spent_seconds=time.monotonic() - started)


def quick_settings(config: Any, *, cuda: bool) -> Any:
    """``config`` with the quick profile's fixed settings (not yet its step count)."""
    train = dataclasses.replace(config.train, grad_accum=1, eval_steps=0, learning_rate=QUICK_LEARNING_RATE,
                                warmup_ratio=QUICK_WARMUP, lr_scheduler="cosine")
    model = config.model
    data = dataclasses.replace(config.data, validation_fraction=min(config.data.validation_fraction,
                                                                    QUICK_VALIDATION_FRACTION))
    if not cuda:
        model = dataclasses.replace(model, quantization="none", compute_dtype="float32")
        train = dataclasses.replace(train, precision="fp32", optimizer="adamw_torch", gradient_checkpointing="off")
    retrieval = dataclasses.replace(config.retrieval, top_k=min(config.retrieval.top_k, QUICK_TOP_K))
    return dataclasses.replace(config, model=model, train=train, data=data, retrieval=retrieval)


def size_quick(config: Any, data: DataSize, probe: Probe, *, budget_seconds: float = QUICK_BUDGET_SECONDS,
               spent_seconds: float = 0.0) -> tuple[Any, RunTime]:
    """``config`` (already ``quick_settings``) with its micro-batch and ``max_steps`` fitted to the budget
    (less ``spent_seconds``, the probe's time before the run).

    The budget buys a number of training examples (mean tokens per example over the measured
    tokens/s). They are spread over at least ``MIN_QUICK_UPDATES`` optimizer steps where the
    configured micro-batch would give fewer (long retrieval prompts on a slow CPU), never more
    than the configured epochs. Raises ``UserError`` below ``MIN_QUICK_EXAMPLES`` examples.
    """
    one_step = run_time(dataclasses.replace(config.train, max_steps=1, batch_size=1), data, probe)
    per_example = one_step.train_seconds
    budget_seconds = max(0.0, budget_seconds - spent_seconds)
    available = budget_seconds * QUICK_MARGIN - one_step.setup_seconds - one_step.eval_seconds
    examples = int(available // per_example) if per_example > 0 else 0
    if examples < MIN_QUICK_EXAMPLES:
        raise UserError(f"this machine trains at {probe.tokens_per_second:,.0f} tokens/s: a quick run would see "
                        f"only {max(examples, 0)} examples of {data.mean_tokens:,.0f} tokens in "
                        f"{duration_words(budget_seconds)}",
                        fix="train on a GPU, or set train.max_steps yourself and accept a longer run")
    micro = max(1, min(config.train.batch_size, examples // MIN_QUICK_UPDATES))
    full = total_steps(dataclasses.replace(config.train, max_steps=0, batch_size=micro), data.train_examples)
    steps = min(examples // micro, full)
    train = dataclasses.replace(config.train, batch_size=micro, max_steps=steps, save_steps=max(1, steps // 2))
    estimate = run_time(train, data, probe)
    # The guard for a machine that gets busier after the probe: training stops when the budget
    # left after start-up and the final validation is used up (measured on the shared machine:
    # a run sized for 13 minutes at load 8.5 took 24 at load 10-12 without it). The stop comes at
    # the first step boundary after the limit, and start-up and validation slow down with the
    # load too, so those are reserved generously (measured: a limit of the plain remainder, 14.0
    # minutes, ended a run at 15 min 18 s on a machine that got busier after its probe).
    reserve = LIMIT_RESERVE * (estimate.setup_seconds + estimate.eval_seconds) + STOP_STEPS * estimate.step_seconds
    limit = (budget_seconds - reserve) / 60
    train = dataclasses.replace(train, max_minutes=round(max(limit, 1.0), 1))
    return dataclasses.replace(config, train=train), estimate


def quick_changes(before: Any, after: Any) -> list[str]:
    """'section.key: old → new' for every setting the quick profile changed."""
    changes = []
    for section in ("model", "train", "data", "retrieval"):
        old, new = getattr(before, section), getattr(after, section)
        for spec in dataclasses.fields(old):
            if getattr(old, spec.name) != getattr(new, spec.name):
                changes.append(f"{section}.{spec.name}: {getattr(old, spec.name)!r} → {getattr(new, spec.name)!r}")
    return changes
