"""How long a configured run will take on this machine, before it starts.

Pure arithmetic over two measured inputs: the size of the run's tokenized data
(``DataSize``) and a ``Probe`` — a few real training micro-batches of the configured
model on this machine, timed (``carexpert.training.probe``). The step count follows
the Trainer's own rule (micro-batches per epoch, rounded up per accumulation, times
epochs, or ``max_steps``); time is tokens divided by the measured tokens per second,
plus the validation passes (forward only, at the probe's forward speed), the data
build and model load the probe timed, and a fixed start-up allowance. A run longer than ``LONG_RUN_SECONDS`` gets a warning.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

LONG_RUN_SECONDS = 3600.0
START_ALLOWANCE_SECONDS = 30.0  # interpreter and library imports, the final adapter save: not in the probe


@dataclass(frozen=True)
class DataSize:
    """The tokenized splits a run trains and validates on."""

    train_examples: int
    train_tokens: int
    validation_examples: int
    validation_tokens: int
    setup_seconds: float = 0.0  # tokenizer + dataset build, measured

    @property
    def mean_tokens(self) -> float:
        return self.train_tokens / self.train_examples if self.train_examples else 0.0


@dataclass(frozen=True)
class Probe:
    """A timed handful of training micro-batches of the real model on this machine."""

    device: str  # "cpu" or "cuda"
    device_name: str  # "2 CPU threads (AMD EPYC 7B13)" or the GPU's name
    precision: str
    micro_batch: int
    tokens: int  # tokens in the timed micro-batches
    seconds: float  # their forward + backward + optimizer update
    forward_tokens: int
    forward_seconds: float  # forward only, as validation runs
    load_seconds: float  # loading the model for training
    measured_at: str = ""
    load_average: float | None = None  # the host's 1-minute load while measuring (shared machines)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def forward_tokens_per_second(self) -> float:
        return self.forward_tokens / self.forward_seconds if self.forward_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True)
class RunTime:
    """Steps, tokens and seconds of one configured run on the probed machine."""

    steps: int
    sequences_per_step: int
    tokens: int
    evaluations: int
    train_seconds: float
    eval_seconds: float
    setup_seconds: float
    probe: Probe

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.eval_seconds + self.setup_seconds

    @property
    def long(self) -> bool:
        return self.total_seconds > LONG_RUN_SECONDS

    @property
    def step_seconds(self) -> float:
        """One optimizer step's training seconds (0 for a run of no steps)."""
        return self.train_seconds / self.steps if self.steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_seconds": self.total_seconds, "long": self.long,
                "line": time_line(self), "warning": long_run_warning(self)}


def steps_per_epoch(examples: int, micro_batch: int, grad_accum: int, world_size: int = 1) -> int:
    """Optimizer steps in one pass, as the Trainer counts them (a last partial step counts)."""
    micro_batches = math.ceil(examples / max(1, micro_batch * world_size))
    return max(1, math.ceil(micro_batches / max(1, grad_accum)))


def total_steps(train: Any, examples: int, world_size: int = 1) -> int:
    """``max_steps`` when set, else epochs x steps per epoch rounded up (transformers' rule)."""
    if train.max_steps:
        return int(train.max_steps)
    return math.ceil(train.epochs * steps_per_epoch(examples, train.batch_size, train.grad_accum, world_size))


def evaluation_count(train: Any, steps: int, validation_examples: int) -> int:
    """Validation passes: every ``eval_steps`` plus the final one (none without a validation set)."""
    if validation_examples == 0:
        return 0
    periodic = steps // train.eval_steps if train.eval_steps > 0 else 0
    final = 0 if train.eval_steps > 0 and steps % train.eval_steps == 0 else 1
    return periodic + final


def run_time(train: Any, data: DataSize, probe: Probe, world_size: int = 1) -> RunTime:
    """The time the configured schedule takes at the probe's measured speed."""
    steps = total_steps(train, data.train_examples, world_size)
    sequences = train.batch_size * train.grad_accum * world_size
    tokens = round(steps * sequences * data.mean_tokens)
    evaluations = evaluation_count(train, steps, data.validation_examples)
    # Data-parallel ranks share the tokens; each measured its own speed alike.
    train_seconds = tokens / (probe.tokens_per_second * world_size) if probe.tokens_per_second else math.inf
    forward_speed = probe.forward_tokens_per_second * world_size
    eval_seconds = evaluations * data.validation_tokens / forward_speed if forward_speed else 0.0
    return RunTime(steps, sequences, tokens, evaluations, train_seconds, eval_seconds,
                   data.setup_seconds + probe.load_seconds + START_ALLOWANCE_SECONDS, probe)


def duration_words(seconds: float) -> str:
    """'about 5 h 40 min', 'about 12 min', 'under a minute'."""
    if not math.isfinite(seconds):
        return "unknown (the probe measured no progress)"
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"about {hours} h {rest:02d} min" if hours < 48 else f"about {seconds / 86400:.0f} days"


def tokens_words(tokens: int) -> str:
    return f"{tokens / 1e6:.2f} M" if tokens >= 1e6 else f"{tokens / 1e3:.1f} k" if tokens >= 1e3 else str(tokens)


def time_line(estimate: RunTime) -> str:
    """One line for the CLI and the Train screen, e.g.
    '213 steps x 16 sequences, 0.49 M tokens: about 5 h 40 min on 2 CPU threads (measured 27 tokens/s)'."""
    probe = estimate.probe
    sequences = f"{estimate.sequences_per_step} sequence{'s' if estimate.sequences_per_step != 1 else ''}"
    return (f"{estimate.steps} steps x {sequences}, {tokens_words(estimate.tokens)} "
            f"tokens: {duration_words(estimate.total_seconds)} on {probe.device_name} "
            f"(measured {probe.tokens_per_second:,.0f} tokens/s training)")


def long_run_warning(estimate: RunTime) -> str | None:
    """The warning shown before a run longer than an hour, with what to do instead; None otherwise."""
    if not estimate.long:
        return None
    hint = ("try the quick profile (carexpert train --quick, or q on the Train screen), "
            "or set train.max_steps" if estimate.probe.device == "cpu" else "set train.max_steps or fewer epochs")
    return f"this run would take {duration_words(estimate.total_seconds)} on this machine; {hint}"
