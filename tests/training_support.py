"""Helpers for the training and runs tests: a tiny dataset and a tiny, fast config."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from carexpert.config import Config

MAKES = ["Toyota Camry", "Honda Accord", "Ford F-150", "Tesla Model 3", "Mazda MX-5", "BMW 330i"]


def write_tiny_dataset(path: Path, count: int = 24) -> Path:
    """Alpaca records with short, varied answers, one JSON object a line."""
    records = []
    for i in range(count):
        car = MAKES[i % len(MAKES)]
        records.append({"instruction": f"How much power does the {car} make?", "input": "",
                        "output": f"The {car} makes {150 + 7 * i} horsepower and {140 + 5 * i} lb-ft of torque."})
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def tiny_config(model_dir: Path, dataset: Path, **train) -> Config:
    """A config that trains the tiny model for a few fast steps on the CPU."""
    config = Config()
    config.model.base_model = str(model_dir)
    config.model.quantization = "none"
    config.data.dataset = str(dataset)
    config.data.max_length = 192
    config.data.validation_fraction = 0.2
    config.retrieval.enabled = False  # the mechanics under test; tests/test_grounded_training.py trains with passages
    config.lora.r = 8
    config.lora.alpha = 16
    config.train.batch_size = 2
    config.train.grad_accum = 2
    config.train.max_steps = 6
    config.train.save_steps = 3
    config.train.eval_steps = 3
    config.train.tensorboard = False
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def wait_for(predicate: Callable[[], bool], timeout: float = 180, what: str = "condition") -> None:
    """Poll until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
