"""Evaluate a run: base vs tuned answers from one set of weights, scored and saved.

The model is loaded once with the run's adapter. Tuned answers come from the model as
loaded; base answers from the same weights inside ``model.disable_adapter()``, so the
comparison isolates exactly what the adapter changed (no second copy of the base in
memory, no chance of comparing against a differently loaded base).

Usage from Python (the CLI and the app do the same)::

    from carexpert.evaluation import evaluate_run
    outcome = evaluate_run(config, RunPaths.of("runs", "run-20261125-094500-a1b2"), limit=50)
    print(outcome.path, outcome.summary["overall"]["tuned"]["score"])
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carexpert.config import Config, load_config
from carexpert.errors import UserError
from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.generate import Generation, ProgressCallback, build_prompts, generate_answers
from carexpert.evaluation.loss import TokenizeFn, answer_loss, perplexity
from carexpert.evaluation.metrics import aggregate, score_answer
from carexpert.evaluation.results import SCHEMA_VERSION, write_results
from carexpert.runs.paths import RunPaths

SIDES = ("base", "tuned")


@dataclass
class EvalData:
    """What to evaluate: the cases, the validation records for loss, and where they came from."""

    cases: list[EvalCase]
    validation: list[dict[str, Any]] = field(default_factory=list)
    tokenize: TokenizeFn | None = None
    fingerprint: str | None = None


@dataclass
class EvalOutcome:
    path: Path
    summary: dict[str, Any]
    items: list[dict[str, Any]]


def require_adapter(run: RunPaths) -> Path:
    """The run's adapter folder; a UserError when the run or its adapter is missing."""
    if not run.exists():
        raise UserError(f"no run {run.run_id!r}", where=str(run.root),
                        fix="list runs with 'carexpert runs list' or check train.runs_dir")
    if not (run.adapter / "adapter_config.json").is_file():
        raise UserError(f"run {run.run_id!r} has no trained adapter yet", where=str(run.adapter),
                        fix="wait for training to finish (or resume it); the adapter is written at the end")
    return run.adapter


def run_config(run: RunPaths, current: Config) -> Config:
    """The run's frozen config (model and data as trained) with the current [eval] settings."""
    config = load_config(run.config) if run.config.is_file() else current
    config.eval = current.eval
    return config


def base_weights(model: Any) -> contextlib.AbstractContextManager:
    """The context in which ``model`` answers as the base model (adapter off)."""
    disable = getattr(model, "disable_adapter", None)
    if disable is None:
        raise UserError("the loaded model has no adapter to switch off",
                        fix="evaluate with --no-base, or load the run's adapter unmerged")
    return disable()


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _side_answers(model: Any, tokenizer: Any, prompts: list[str], config: Config, phase: str,
                  progress: ProgressCallback | None, cancel: threading.Event | None) -> tuple[list[Generation], float]:
    started = time.perf_counter()
    answers = generate_answers(model, tokenizer, prompts, max_new_tokens=config.eval.max_new_tokens,
                               batch_size=config.eval.batch_size, progress=progress, phase=phase, cancel=cancel)
    return answers, time.perf_counter() - started


def evaluate_model(model: Any, tokenizer: Any, data: EvalData, config: Config, *, compare_base: bool = True,
                   progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer, score and aggregate every case; returns (summary without run metadata, items)."""
    cases = data.cases
    prompts = build_prompts([(c.question, c.input) for c in cases], config.chat.system_prompt)
    tolerance = config.eval.numeric_tolerance
    timings: dict[str, float | None] = {"base_s": None, "tuned_s": None}
    answers: dict[str, list[Generation] | None] = {"base": None, "tuned": None}
    losses: dict[str, float | None] = {"base": None, "tuned": None}
    model.eval()
    answers["tuned"], timings["tuned_s"] = _side_answers(model, tokenizer, prompts, config, "tuned", progress, cancel)
    losses["tuned"] = _validation_loss(model, tokenizer, data, config, "val_loss_tuned", progress, cancel)
    if compare_base:
        with base_weights(model):
            answers["base"], timings["base_s"] = _side_answers(model, tokenizer, prompts, config, "base",
                                                               progress, cancel)
            losses["base"] = _validation_loss(model, tokenizer, data, config, "val_loss_base", progress, cancel)

    items, scores = score_all(cases, answers, tolerance)
    summary = {
        "n_items": len(cases),
        "timings": {key: _round(value, 2) for key, value in timings.items()},
        "val_loss": {side: _round(losses[side]) for side in SIDES},
        "perplexity": {side: _round(perplexity(losses[side]), 3) for side in SIDES},
        **scores,
        "n_validation": len(data.validation),
    }
    return summary, items


def score_all(cases: Sequence[EvalCase], answers: dict[str, list[Generation] | None], tolerance: float,
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Items (answers with their scores) and the aggregates: categories, overall, sources, holdouts."""
    scored: dict[str, list[dict[str, Any]] | None] = {}
    for side in SIDES:
        side_answers = answers[side]
        scored[side] = None if side_answers is None else [
            score_answer(case, answer.text, tolerance=tolerance, stop_reason=answer.stop_reason,
                         n_tokens=answer.n_tokens) for case, answer in zip(cases, side_answers)]
    items = [_item(i, case, answers, scored) for i, case in enumerate(cases)]
    return items, {
        "categories": _by_category(cases, scored),
        "overall": {side: None if scored[side] is None else aggregate(scored[side], cases) for side in SIDES},
        "sources": _count(c.source for c in cases),
        "holdouts": _by_group(cases, scored, lambda c: c.holdout or c.source),
    }


def _validation_loss(model: Any, tokenizer: Any, data: EvalData, config: Config, phase: str,
                     progress: ProgressCallback | None, cancel: threading.Event | None) -> float | None:
    if not data.validation or data.tokenize is None:
        return None
    return answer_loss(model, tokenizer, data.validation, tokenize=data.tokenize,
                       max_length=config.data.max_length, batch_size=config.eval.batch_size,
                       progress=progress, phase=phase, cancel=cancel)


def _item(index: int, case: EvalCase, answers: dict, scored: dict) -> dict[str, Any]:
    return {
        "id": case.id, "category": case.category, "question": case.question,
        "reference": case.reference_text, "expected": case.expected(),
        "base_answer": None if answers["base"] is None else answers["base"][index].text,
        "tuned_answer": answers["tuned"][index].text,
        "base": None if scored["base"] is None else scored["base"][index],
        "tuned": scored["tuned"][index],
        "input": case.input, "source": case.source, "holdout": case.holdout,
    }


def _by_category(cases: Sequence[EvalCase], scored: dict) -> dict[str, Any]:
    return _by_group(cases, scored, lambda case: case.category)


def _by_group(cases: Sequence[EvalCase], scored: dict, key: Callable[[EvalCase], str]) -> dict[str, Any]:
    """{group: {"n", "base", "tuned"}} for cases grouped by ``key`` (category, holdout kind)."""
    categories: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        categories.setdefault(key(case), []).append(index)
    table = {}
    for category in sorted(categories):
        indices = categories[category]
        subset = [cases[i] for i in indices]
        table[category] = {"n": len(indices)}
        for side in SIDES:
            results = scored[side]
            table[category][side] = None if results is None else aggregate([results[i] for i in indices], subset)
    return table


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def evaluate_run(config: Config, run: RunPaths, *, limit: int | None = None, compare_base: bool | None = None,
                 progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                 data: EvalData | None = None,
                 loader: Callable[[Config, Path], tuple[Any, Any]] | None = None) -> EvalOutcome:
    """Evaluate ``run``'s adapter against its base and save the results in the run folder.

    ``limit`` caps the held-out items (and validation records); showcase and user cases are
    always included. ``data`` and ``loader`` replace the dataset and model loading (tests).
    """
    adapter = require_adapter(run)
    config = run_config(run, config)
    compare_base = config.eval.compare_base if compare_base is None else compare_base
    limit = config.eval.limit if limit is None else limit
    started = time.perf_counter()
    if progress:
        progress("load", 0, 1)
    if data is None:
        from carexpert.evaluation.data import load_eval_data  # the dataset package is only needed here

        data = load_eval_data(config, limit=limit)
    if not data.cases:
        raise UserError("nothing to evaluate: the held-out set is empty", where="data.test_fraction",
                        fix="set data.test_fraction above 0 or add cases with 'carexpert eval add-case'")
    model, tokenizer = (loader or _load_model)(config, adapter)
    if config.data.skip_bad_records and data.fingerprint is not None:
        from carexpert.dataset import fingerprint_from_config  # over-long records are skipped by tokenizer

        data.fingerprint = fingerprint_from_config(config, tokenizer)
    load_s = time.perf_counter() - started
    if progress:
        progress("load", 1, 1)
    partial, items = evaluate_model(model, tokenizer, data, config, compare_base=compare_base,
                                    progress=progress, cancel=cancel)
    timings = {"load_s": round(load_s, 2), **partial.pop("timings"),
               "total_s": round(time.perf_counter() - started, 2)}
    summary = {
        "version": SCHEMA_VERSION, "run_id": run.run_id,
        "created": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "model": config.model.base_model, "adapter": str(adapter), "config": config.to_dict(),
        "dataset_fingerprint": data.fingerprint, "timings": timings, **partial,
        **_training_data_check(run, data.fingerprint),
        "compare_base": compare_base, "limit": limit,
    }
    path = write_results(run.eval, summary, items)
    return EvalOutcome(path, summary, items)


def _training_data_check(run: RunPaths, fingerprint: str | None) -> dict[str, Any]:
    """The fingerprint the run trained on (its newest checkpoint's marker) and whether it is this data:
    when the data changed since, "held-out" questions may have been trained on."""
    from carexpert.training.guard import checkpoints_newest_first, read_marker

    trained = next((marker.get("dataset_fingerprint") for marker in map(read_marker, checkpoints_newest_first(
        run.checkpoints)) if marker and marker.get("dataset_fingerprint")), None)
    matches = None if trained is None or fingerprint is None else trained == fingerprint
    return {"training_fingerprint": trained, "data_matches_training": matches}


def _load_model(config: Config, adapter: Path) -> tuple[Any, Any]:
    from carexpert.modeling import load_for_inference  # torch/transformers: only when evaluating

    return load_for_inference(config, adapter_dir=adapter)
