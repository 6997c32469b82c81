"""Figures that follow from the config: batch arithmetic, steps and a VRAM estimate.

All arithmetic, no model loading. The memory estimate itself is the core's
(``carexpert.estimate``: model shape from config.json / the GGUF header, quantization,
LoRA, batch and length); the app asks it once per base model for the shape (that read
can take many seconds, so ``Services.model_shape`` does it in a child process) and then
re-runs the cheap formula on every keystroke. ``derived_figures`` is the one place
that turns a config into the lines the screen shows.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.config import Config
from carexpert_tui.formatting import gib


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    warning: bool = False


def training_examples(config: Config) -> int | None:
    """How many pairs reach training (builtin: after the validation and test splits)."""
    share = max(0.0, 1.0 - config.data.validation_fraction - config.data.test_fraction)
    if config.data.dataset == "builtin":
        return int(config.data.num_examples * share)
    path = Path(config.data.dataset).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return None
    count = _count_records(str(path), stat.st_size, stat.st_mtime_ns)
    return None if count is None else int(count * (1.0 - config.data.validation_fraction))


@functools.lru_cache(maxsize=8)
def _count_records(path: str, size: int, mtime_ns: int) -> int | None:
    """Records in a user file, read once per version of the file (this runs on every keystroke)."""
    suffix = Path(path).suffix
    try:
        if suffix in (".jsonl", ".csv"):
            with open(path, "rb") as handle:
                count = sum(1 for line in handle if line.strip())
            return max(0, count - 1) if suffix == ".csv" else count
        if suffix == ".json" and size < 200 * 1024**2:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return len(data) if isinstance(data, list) else 0
    except (OSError, ValueError):
        return None
    return None


def model_shape(base_model: str) -> Any:
    """The model's shape (no weights loaded) or None when unknown offline; may be slow."""
    from carexpert.estimate import shape_for_model

    try:
        return shape_for_model(base_model)
    except Exception:  # noqa: BLE001 - unreadable config.json / GGUF: the figure just says unknown
        return None


def derived_figures(config: Config, *, n_gpus: int, n_train: int | None, shape: Any,
                    gpu_name: str | None = None, gpu_total_bytes: int | None = None) -> list[Figure]:
    """The figures the Config screen shows beside the form."""
    from carexpert.estimate import estimate_for_config

    train = config.train
    devices = max(1, n_gpus)
    effective = train.batch_size * train.grad_accum * devices
    figures = [Figure("eff. batch", f"{train.batch_size}×{train.grad_accum}×{devices} = {effective}")]
    if n_train is None:
        figures.append(Figure("examples", "unknown (dataset not readable)", True))
        steps_per_epoch = None
    else:
        steps_per_epoch = max(1, math.ceil(n_train / effective)) if n_train else 0
        figures.append(Figure("examples", f"≈{n_train:,}"))
        figures.append(Figure("steps/epoch", f"{steps_per_epoch:,}"))
    if train.max_steps:
        figures.append(Figure("total steps", f"{train.max_steps:,} (max_steps)"))
    elif steps_per_epoch is not None:
        figures.append(Figure("total steps", f"{math.ceil(train.epochs * steps_per_epoch):,}"))
    if shape is None:
        figures.append(Figure("VRAM/GPU", "unknown for this model offline", True))
        return figures
    estimate = estimate_for_config(config, gpu_name=gpu_name, on_gpu=n_gpus > 0, shape=shape)
    if estimate is None:
        figures.append(Figure("VRAM/GPU", "unknown", True))
        return figures
    too_big = bool(gpu_total_bytes) and estimate.peak_bytes > gpu_total_bytes
    fits = "" if not gpu_total_bytes else (f" > {gib(gpu_total_bytes, 0)}!" if too_big else f" / {gib(gpu_total_bytes, 0)}")
    figures.append(Figure("params", f"{estimate.total_params / 1e9:.2f}B"))
    figures.append(Figure("LoRA params", f"{estimate.lora_params / 1e6:.1f}M"))
    figures.append(Figure("VRAM/GPU", f"≈{gib(estimate.peak_bytes)}{fits}", too_big))
    figures.append(Figure(" weights", gib(estimate.weights_bytes, 2)))
    figures.append(Figure(" activations", gib(estimate.activation_bytes + estimate.logits_bytes, 2)))
    if estimate.step_seconds:
        figures.append(Figure("step time", f"≈{estimate.step_seconds:.2f}s"))
    return figures
