"""Compare runs: their loss curves, what differs in their configs, their eval summaries.

Everything comes from the run folders (frozen ``config.toml``, ``events.jsonl``,
``eval/*/summary.json``), so runs can be compared while they train, after they
died, or on another machine after copying the folders.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from carexpert.runs.artifacts import eval_results
from carexpert.runs.events import read_events
from carexpert.runs.paths import RunPaths


@dataclass
class Curves:
    """Loss history of one run: (step, value) pairs."""

    run_id: str
    train: list[tuple[int, float]] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    lr: list[tuple[int, float]] = field(default_factory=list)


def load_curves(run: RunPaths) -> Curves:
    curves = Curves(run.run_id)
    for event in read_events(run.events):
        step = event.get("step")
        if not _real(step):
            continue  # also skips a hand-edited line whose step is not a number
        if event["type"] == "step" and _real(event.get("loss")):
            curves.train.append((int(step), float(event["loss"])))
            if _real(event.get("lr")):
                curves.lr.append((int(step), float(event["lr"])))
        elif event["type"] == "eval" and _real(event.get("val_loss")):
            curves.validation.append((int(step), float(event["val_loss"])))
    return curves


def _real(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def frozen_config(run: RunPaths) -> dict[str, Any]:
    """The run's frozen config as a flat ``section.key -> value`` dict ({} when unreadable)."""
    try:
        data = tomllib.loads(run.config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
        return {}
    return {f"{section}.{key}": value for section, body in data.items() if isinstance(body, dict)
            for key, value in body.items()}


def config_diff(runs: list[RunPaths]) -> dict[str, list[Any]]:
    """Keys whose values differ between the runs: ``key -> [value per run]`` (None = absent)."""
    flats = [frozen_config(run) for run in runs]
    keys = sorted(set().union(*flats)) if flats else []
    return {key: [flat.get(key) for flat in flats] for key in keys
            if len({json.dumps(flat.get(key), sort_keys=True) for flat in flats}) > 1}


def latest_eval_summary(run: RunPaths) -> dict[str, Any] | None:
    """The newest evaluation summary of a run (read by ``carexpert.evaluation.results``, so an
    older version's file comes in the current shape), or None."""
    from carexpert.errors import UserError
    from carexpert.evaluation.results import load_results  # the owner of the results format

    for folder in eval_results(run):
        try:
            return load_results(folder).summary
        except (UserError, RecursionError):
            continue
    return None


def final_values(curves: Curves) -> dict[str, float | None]:
    return {"last_train_loss": curves.train[-1][1] if curves.train else None,
            "best_val_loss": min((v for _, v in curves.validation), default=None),
            "steps": curves.train[-1][0] if curves.train else 0}


def compare_runs(runs_dir: str | Path, run_ids: list[str]) -> dict[str, Any]:
    """Everything a comparison view shows, as plain data."""
    runs = [RunPaths.of(runs_dir, run_id) for run_id in run_ids]
    curves = [load_curves(run) for run in runs]
    summaries = [latest_eval_summary(run) for run in runs]
    return {"runs": run_ids, "curves": curves, "finals": [final_values(c) for c in curves],
            "config_diff": config_diff(runs), "eval": summaries}
