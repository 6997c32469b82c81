"""Re-score saved answers with the current metrics, without loading a model.

Metrics improve; answers that took an hour of CPU to generate need not be generated again.
``rescore_results`` reads a result folder's items (answers, how each ended, the expectations
they were scored against), scores them again and writes a new result folder beside the old
one, with ``rescored_from`` naming its source. Losses, timings and metadata are kept.
A version 1 result (``load_results`` reads it as version 2) is rescored into a version 2 one.
The guard's answers stay the guard's (their stop reason says so), and the retrieval sides'
``used`` passages are found again in the saved ``retrieved`` passages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carexpert.evaluation.cases import EvalCase, numeric_reference
from carexpert.evaluation.generate import Generation
from carexpert.evaluation.metrics import GUARD
from carexpert.evaluation.results import SCHEMA_VERSION, load_results, write_results
from carexpert.evaluation.runner import EvalOutcome, score_all
from carexpert.evaluation.sides import SIDE_NAMES


def case_from_item(item: dict[str, Any]) -> EvalCase:
    """The case an items.jsonl line was scored against."""
    expected = item.get("expected") or {}
    return EvalCase(id=str(item["id"]), category=str(item.get("category", "")), question=str(item["question"]),
                    input=str(item.get("input") or ""), reference_text=str(item.get("reference") or ""),
                    reference=numeric_reference(expected.get("reference")),
                    key_terms=list(expected.get("key_terms") or []),
                    expect_refusal=bool(expected.get("expect_refusal", False)),
                    source=str(item.get("source") or "test"), holdout=str(item.get("holdout") or ""),
                    store=dict(expected.get("store") or {}))


def _generation(item: dict[str, Any], side: str) -> Generation | None:
    text = item.get(f"{side}_answer")
    if text is None:
        return None
    scores = item.get(side) or {}
    if scores.get("guard"):
        return Generation(text, 0, GUARD)
    return Generation(text, int(scores.get("length_tokens") or 0), str(scores.get("stop_reason") or "eos"))


def rescore_results(path: str | Path, tolerance: float | None = None) -> EvalOutcome:
    """Score a saved result's answers again; the new folder is written beside it."""
    old = load_results(path)
    cases = [case_from_item(item) for item in old.items]
    answers: dict[str, list[Generation] | None] = {}
    for side in SIDE_NAMES:
        generations = [_generation(item, side) for item in old.items]
        answers[side] = None if any(g is None for g in generations) else generations  # type: ignore[assignment]
    if tolerance is None:
        tolerance = float(((old.summary.get("config") or {}).get("eval") or {}).get("numeric_tolerance", 0.03))
    has_retrieval = any(item.get("retrieved") is not None for item in old.items)
    retrieved = [item.get("retrieved") or [] for item in old.items] if has_retrieval else None
    unknown = [item.get("unknown") for item in old.items] if has_retrieval else None
    items, scores = score_all(cases, answers, tolerance, retrieved, unknown)
    summary = {**old.summary, **scores, "version": SCHEMA_VERSION, "n_items": len(cases), "rescored_from": old.name,
               "created": datetime.now(UTC).astimezone().isoformat(timespec="seconds")}
    summary.pop("upgraded_from", None)
    new_path = write_results(old.path.parent, summary, items)
    return EvalOutcome(new_path, summary, items)
