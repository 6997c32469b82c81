"""Evaluate a run: each held-out question answered on up to four sides, scored and saved.

The model is loaded once with the run's adapter. Base answers come from the weights inside
``model.disable_adapter()`` (``base_weights``), tuned answers from the same weights with the
adapter on, so the comparison isolates exactly what the adapter changed (no second copy of the
base in memory, no chance of comparing against a differently loaded base). The base sides run
first; then, for the tuned sides and the tuned validation loss, the adapter is merged into the
weights (``tuned_weights``): one matrix product per projection instead of three, which on a
GPU turns hundreds of small kernels per token into none. It is unmerged when they are done (on
cancel or error too). Unmerging in bf16 restores the base weights up to rounding, which is why
the base sides go first. A quantized base (NF4) keeps the adapter unmerged: merging into 4-bit
weights rounds the adapter's change into the 4-bit grid. The retrieval sides
(``carexpert.evaluation.sides``) put the passages retrieved for each question into its
prompt; closed-book sides ask the question alone. Retrieval runs once per question and
both models read the same passages.

Usage from Python (the CLI and the app do the same)::

    from carexpert.evaluation import evaluate_run
    outcome = evaluate_run(config, RunPaths.of("runs", "run-20261125-094500-a1b2"), limit=50)
    print(outcome.path, outcome.summary["overall"]["tuned_rag"]["score"])
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.evaluation.attribution import used_passages
from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.data import EvalData, load_eval_data
from carexpert.evaluation.generate import Generation, ProgressCallback, build_prompts, generate_answers
from carexpert.evaluation.loss import answer_loss, perplexity
from carexpert.evaluation.metrics import GUARD, aggregate, score_answer
from carexpert.evaluation.results import SCHEMA_VERSION, write_results
from carexpert.evaluation.retrieve import CaseRetrieval, open_eval_retriever, passages_of, retrieve_all
from carexpert.evaluation.sides import MODELS, SIDE_NAMES, SIDES, default_sides, order
from carexpert.knowledge.derived import DERIVED
from carexpert.runs.artifacts import config_for_adapter, require_adapter
from carexpert.runs.checkpoints import trained_fingerprint
from carexpert.runs.paths import RunPaths

LOSS_BATCH_CAP = 32  # validation loss keeps the answer logits of a whole batch (262k-word vocabulary)


@dataclass
class EvalOutcome:
    path: Path
    summary: dict[str, Any]
    items: list[dict[str, Any]]


def base_weights(model: Any) -> contextlib.AbstractContextManager:
    """The context in which ``model`` answers as the base model (adapter off)."""
    disable = getattr(model, "disable_adapter", None)
    if disable is None:
        raise UserError("the loaded model has no adapter to switch off",
                        fix="evaluate with --no-base, or load the run's adapter unmerged")
    if adapter_merged(model):  # peft would unmerge it on the first forward and never merge it back
        raise RuntimeError("base_weights entered with the adapter merged into the weights; leave tuned_weights first")
    return disable()


def _lora_layers(model: Any) -> list[Any]:
    """peft's adapter-carrying layers (they keep ``merged_adapters``)."""
    modules = getattr(model, "modules", None)
    return [m for m in modules() if hasattr(m, "merged_adapters")] if callable(modules) else []


def adapter_merged(model: Any) -> bool:
    """Whether any of the model's LoRA layers holds its adapter merged into the weights."""
    return any(bool(layer.merged_adapters) for layer in _lora_layers(model))


def quantized_base(model: Any) -> bool:
    """Whether the base weights are bitsandbytes 4-bit or 8-bit layers."""
    from carexpert.modeling.summary import is_quantized_layer

    return any(is_quantized_layer(module) for module in model.modules())


@contextlib.contextmanager
def tuned_weights(model: Any) -> Iterator[str]:
    """The context in which ``model`` answers as the tuned model, as fast as it can; yields how:
    "merged" (the adapter folded into unquantized weights, unmerged on the way out, whatever
    happens inside), "unmerged" (a quantized base: merging into 4-bit weights is lossy) or
    "as loaded" (no LoRA layers: a model loaded merged, or a plain model)."""
    if not _lora_layers(model) or getattr(model, "merge_adapter", None) is None:
        yield "as loaded"
        return
    if quantized_base(model):
        yield "unmerged"
        return
    try:
        model.merge_adapter()
        yield "merged"
    finally:
        if adapter_merged(model):  # also after a merge that failed half-way
            model.unmerge_adapter()


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def evaluate_model(model: Any, tokenizer: Any, data: EvalData, config: Config, *,
                   sides: Sequence[str] = ("tuned_closed", "base_closed"), retriever: Any = None,
                   progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer, score and aggregate every case on each of ``sides``; returns (summary without run
    metadata, items). ``retriever`` (``retrieve(question) -> Retrieval``) is needed for retrieval sides."""
    cases = data.cases
    sides = order(sides)
    timings: dict[str, float | None] = {"retrieval_s": None, **{f"{side}_s": None for side in sides}}
    retrievals: list[CaseRetrieval] | None = None
    if any(SIDES[side].rag for side in sides):
        if retriever is None:
            raise ValueError("retrieval sides need a retriever")
        retrievals, seconds = retrieve_all(retriever, cases, guard=config.retrieval.guard, progress=progress,
                                           cancel=cancel)
        timings["retrieval_s"] = seconds
    questions = [(c.question, c.input) for c in cases]
    system = config.chat.system_prompt
    prompts = {False: build_prompts(questions, system),
               True: build_prompts(questions, system, [r.texts for r in retrievals]) if retrievals else None}
    answers: dict[str, list[Generation] | None] = {side: None for side in SIDE_NAMES}
    losses: dict[str, float | None] = {model_name: None for model_name in MODELS}
    weights: str | None = None
    model.eval()
    for model_name in ("base", "tuned"):  # base first: merging and unmerging in bf16 rounds the base weights
        mine = [side for side in sides if SIDES[side].model == model_name]
        if not mine:
            continue
        with (base_weights(model) if model_name == "base" else tuned_weights(model)) as how:
            if model_name == "tuned":
                weights = how
            for side in mine:
                started = time.perf_counter()
                side_prompts = prompts[SIDES[side].rag]
                assert side_prompts is not None  # retrieval sides ran the retrieval above
                answers[side] = _side_answers(model, tokenizer, side_prompts,
                                              retrievals if SIDES[side].rag else None, config, side, progress, cancel)
                timings[f"{side}_s"] = time.perf_counter() - started
            losses[model_name] = _validation_loss(model, tokenizer, data, config, f"val_loss_{model_name}",
                                                  progress, cancel)

    items, scores = score_all(cases, answers, config.eval.numeric_tolerance,
                              [r.hits for r in retrievals] if retrievals else None,
                              [r.unknown for r in retrievals] if retrievals else None)
    summary = {
        "n_items": len(cases),
        "sides": list(sides),
        "timings": {key: _round(value, 2) for key, value in timings.items()},
        "val_loss": {name: _round(losses[name]) for name in MODELS},
        "perplexity": {name: _round(perplexity(losses[name]), 3) for name in MODELS},
        **scores,
        "n_validation": len(data.validation),
        "tuned_weights": weights,
    }
    return summary, items


def _side_answers(model: Any, tokenizer: Any, prompts: list[str], retrievals: list[CaseRetrieval] | None,
                  config: Config, phase: str, progress: ProgressCallback | None,
                  cancel: threading.Event | None) -> list[Generation]:
    """One side's answers: the guard's refusal where it applies, generated answers for the rest."""
    guarded = {i: r.refusal for i, r in enumerate(retrievals or ()) if r.refusal}
    todo = [i for i in range(len(prompts)) if i not in guarded]
    generated = generate_answers(model, tokenizer, [prompts[i] for i in todo],
                                 max_new_tokens=config.eval.max_new_tokens, batch_size=config.eval.batch_size,
                                 progress=progress, phase=phase, cancel=cancel)
    answers: dict[int, Generation] = dict(zip(todo, generated))
    answers.update({i: Generation(text, 0, GUARD) for i, text in guarded.items()})
    return [answers[i] for i in range(len(prompts))]


def score_all(cases: Sequence[EvalCase], answers: dict[str, list[Generation] | None], tolerance: float,
              retrieved: Sequence[Sequence[dict[str, Any]]] | None = None,
              unknown: Sequence[str | None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Items (answers with their scores) and the aggregates: categories, overall, sources, holdouts.

    ``retrieved`` holds each case's retrieved passages (saved form); a retrieval side's answers
    are checked against them for the passages they ``used``."""
    scored: dict[str, list[dict[str, Any]] | None] = {}
    for side in SIDE_NAMES:
        side_answers = answers.get(side)
        if side_answers is None:
            scored[side] = None
            continue
        results = []
        for index, (case, answer) in enumerate(zip(cases, side_answers)):
            given = retrieved[index] if retrieved is not None and SIDES[side].rag else ()
            result = score_answer(case, answer.text, tolerance=tolerance, stop_reason=answer.stop_reason,
                                  n_tokens=answer.n_tokens,
                                  computed=[str(h.get("text", "")) for h in given if h.get("kind") == DERIVED])
            if SIDES[side].rag:  # the guard's words come from no passage
                hits = given if not result["guard"] else ()
                result["used"] = used_passages(answer.text, passages_of(hits),
                                               question=f"{case.question} {case.input}", tolerance=tolerance)
            results.append(result)
        scored[side] = results
    items = [_item(i, case, answers, scored, retrieved, unknown) for i, case in enumerate(cases)]
    return items, {
        "categories": _by_category(cases, scored),
        "overall": {side: None if (side_results := scored[side]) is None else aggregate(side_results, cases)
                    for side in SIDE_NAMES},
        "sources": _count(c.source for c in cases),
        "holdouts": _by_group(cases, scored, lambda c: c.holdout or c.source),
    }


def _validation_loss(model: Any, tokenizer: Any, data: EvalData, config: Config, phase: str,
                     progress: ProgressCallback | None, cancel: threading.Event | None) -> float | None:
    if not data.validation or data.tokenize is None:
        return None
    from carexpert.evaluation.generate import resolve_batch_size

    batch_size = min(resolve_batch_size(config.eval.batch_size, next(model.parameters()).device), LOSS_BATCH_CAP)
    return answer_loss(model, tokenizer, data.validation, tokenize=data.tokenize,
                       max_length=config.data.max_length, batch_size=batch_size,
                       progress=progress, phase=phase, cancel=cancel)


def _item(index: int, case: EvalCase, answers: dict, scored: dict, retrieved: Sequence | None,
          unknown: Sequence | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": case.id, "category": case.category, "question": case.question,
        "reference": case.reference_text, "expected": case.expected(),
        "input": case.input, "source": case.source, "holdout": case.holdout,
        "retrieved": None if retrieved is None else list(retrieved[index]),
        "unknown": None if unknown is None else unknown[index],
    }
    for side in SIDE_NAMES:
        side_answers = answers.get(side)
        item[f"{side}_answer"] = None if side_answers is None else side_answers[index].text
        item[side] = None if scored[side] is None else scored[side][index]
    return item


def _by_category(cases: Sequence[EvalCase], scored: dict) -> dict[str, Any]:
    return _by_group(cases, scored, lambda case: case.category)


def _by_group(cases: Sequence[EvalCase], scored: dict, key: Callable[[EvalCase], str]) -> dict[str, Any]:
    """{group: {"n", side: {...} or None, ...}} for cases grouped by ``key`` (category, holdout kind)."""
    categories: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        categories.setdefault(key(case), []).append(index)
    table: dict[str, dict[str, Any]] = {}
    for category in sorted(categories):
        indices = categories[category]
        subset = [cases[i] for i in indices]
        table[category] = {"n": len(indices)}
        for side in SIDE_NAMES:
            results = scored[side]
            table[category][side] = None if results is None else aggregate([results[i] for i in indices], subset)
    return table


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def choose_sides(config: Config, sides: Sequence[str] | None = None,
                 compare_base: bool | None = None) -> tuple[str, ...]:
    """The sides to evaluate: ``sides`` when named, else the defaults (retrieval sides follow
    ``retrieval.enabled``, base sides ``eval.compare_base``); ``compare_base=False`` drops base sides."""
    if sides:
        chosen = order(sides)
    else:
        chosen = default_sides(config.retrieval.enabled,
                               config.eval.compare_base if compare_base is None else compare_base)
    if compare_base is False:
        chosen = tuple(side for side in chosen if SIDES[side].model == "tuned")
    if not chosen:
        raise UserError("no side left to evaluate", where="--sides / --no-base",
                        fix="name a tuned side (tuned_closed, tuned_rag) or drop --no-base")
    return chosen


def evaluate_run(config: Config, run: RunPaths, *, limit: int | None = None, compare_base: bool | None = None,
                 sides: Sequence[str] | None = None, progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None, data: EvalData | None = None,
                 loader: Callable[[Config, Path], tuple[Any, Any]] | None = None,
                 retriever: Any = None) -> EvalOutcome:
    """Evaluate ``run``'s adapter on ``sides`` (default: ``choose_sides``) and save the results in the run folder.

    ``limit`` caps the held-out items (and validation records); showcase and user cases are
    always included. ``data``, ``loader`` and ``retriever`` replace the dataset, the model
    loading and the knowledge store's retriever (tests).
    """
    adapter = require_adapter(run)
    config = config_for_adapter(run, config)
    chosen = choose_sides(config, sides, compare_base)
    limit = config.eval.limit if limit is None else limit
    started = time.perf_counter()
    if progress:
        progress("load", 0, 1)
    if data is None:
        data = load_eval_data(config, limit=limit)
    if not data.cases:
        raise UserError("nothing to evaluate: the held-out set is empty", where="data.test_fraction",
                        fix="set data.test_fraction above 0 or add cases with 'carexpert eval add-case'")
    model, tokenizer = (loader or _load_model)(config, adapter)
    if config.data.skip_bad_records and data.fingerprint is not None:
        from carexpert.dataset import fingerprint_from_config  # over-long records are skipped by tokenizer

        data.fingerprint = fingerprint_from_config(config, tokenizer)
    if retriever is None and any(SIDES[side].rag for side in chosen):
        retriever = open_eval_retriever(config)  # the context budget counted as training and chat count it
    load_s = time.perf_counter() - started
    if progress:
        progress("load", 1, 1)
    partial, items = evaluate_model(model, tokenizer, data, config, sides=chosen, retriever=retriever,
                                    progress=progress, cancel=cancel)
    timings = {"load_s": round(load_s, 2), **partial.pop("timings"),
               "total_s": round(time.perf_counter() - started, 2)}
    summary = {
        "version": SCHEMA_VERSION, "run_id": run.run_id,
        "created": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "model": config.model.base_model, "adapter": str(adapter), "config": config.to_dict(),
        "dataset_fingerprint": data.fingerprint, "timings": timings, **partial,
        **_training_data_check(run, data.fingerprint),
        "compare_base": any(SIDES[side].model == "base" for side in chosen), "limit": limit,
    }
    path = write_results(run.eval, summary, items)
    return EvalOutcome(path, summary, items)


def _training_data_check(run: RunPaths, fingerprint: str | None) -> dict[str, Any]:
    """The fingerprint the run trained on (its newest checkpoint's marker) and whether it is this data:
    when the data changed since, "held-out" questions may have been trained on."""
    trained = trained_fingerprint(run)
    matches = None if trained is None or fingerprint is None else trained == fingerprint
    return {"training_fingerprint": trained, "data_matches_training": matches}


def _load_model(config: Config, adapter: Path) -> tuple[Any, Any]:
    from carexpert.modeling import load_for_inference  # torch/transformers: only when evaluating

    return load_for_inference(config, adapter_dir=adapter)
