"""Retrieval-augmented training records: each question with the passages a real retrieval gives it.

A 270M model cannot hold a hundred vehicles' figures in its adapter, but it can learn to
read them from the prompt. So every training and validation record gets a ``context``
(the passage texts ``carexpert.prompt.render_prompt`` puts in a ``### Context:`` section),
built from the same retrieval that evaluation and chat use, in one of three shapes:

- **oracle**: the passage(s) holding the answer plus the retriever's other hits as
  distractors; the answer is unchanged (its figures are the passage's figures). A passage
  the retriever computed for the question (``kind`` "derived": a comparison's differences,
  a fuel cost; ``carexpert.knowledge.derived``) from the record's own vehicles joins them,
  right after the vehicles' passages, so the model learns to copy those figures too;
- **distractors only** (a share of the questions whose answer rests on one vehicle's
  figures): the answering passage, and every derived passage computed from that vehicle
  (its figures would contradict the refusal), is dropped on purpose and the answer becomes the
  "no verified figure" refusal naming the closest vehicles in the context
  (``carexpert.retrieval.guard_refusal``), so the model learns to abstain instead of
  copying a distractor's figures (Gekhman et al. 2024: tuning on facts a model cannot
  know raises hallucination);
- **refusal**: questions about made-up models get the retriever's real neighbours as
  context and the same refusal, naming vehicles the context really holds.

Passages of facts held out for evaluation never appear in training contexts, nor does a
derived passage computed from a held-out vehicle, so the test measures reading, not memory. The choice per record is seeded by the record id:
the same data and store always give the same records.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

from carexpert.retrieval import Passage, Retrieval, guard_refusal

ORACLE, DISTRACTOR_ONLY, REFUSAL, OPEN = "oracle", "distractor_only", "refusal", "open"
# Single-vehicle kinds whose answer is that vehicle's figures or facts: the ones that may lose their passage.
_VEHICLE_PREFIX = "vehicle:"
_FICTIONAL_PREFIX = "fictional:"


class RetrieverLike(Protocol):
    def retrieve(self, question: str, k: int | None = None) -> Retrieval: ...

    def passage(self, passage_id: str) -> Passage | None: ...


@dataclass(frozen=True)
class GroundingPlan:
    """How training contexts are drawn (the shares are per eligible record)."""

    top_k: int = 3
    distractor_only_share: float = 0.15  # of single-vehicle questions: answering passage dropped, refusal target
    oracle_first_share: float = 0.6      # otherwise the answering passage goes to a random place
    seed: int = 42


def question_text(record: Mapping[str, Any]) -> str:
    """What retrieval is asked: the instruction and, when there is one, the Alpaca input."""
    return " ".join(part for part in (str(record.get("instruction", "")), str(record.get("input") or "")) if part.strip())


def ground_records(records: Iterable[Mapping[str, Any]], retriever: RetrieverLike, plan: GroundingPlan,
                   held_out: AbstractSet[str] = frozenset()) -> list[dict[str, Any]]:
    """Copies of ``records`` with ``context``, ``context_ids`` and ``grounding`` (the shape) set."""
    return [ground_record(record, retriever, plan, held_out) for record in records]


def ground_record(record: Mapping[str, Any], retriever: RetrieverLike, plan: GroundingPlan,
                  held_out: AbstractSet[str] = frozenset()) -> dict[str, Any]:
    if "grounding" in record:  # grounded already (a folder written by 'carexpert data build')
        return dict(record)
    rng = random.Random(f"{plan.seed}:grounding:{record.get('id', question_text(record))}")
    question = question_text(record)
    # Ask for a few spare hits: some are held out or are the passage we drop on purpose.
    retrieval = retriever.retrieve(question, k=plan.top_k + 3)
    hits = [p for p in retrieval.passages if not _held(p, held_out)]
    fact_ids = [str(f) for f in record.get("fact_ids", ())]
    # A retrieved passage is preferred to the stored one of the same id: the budget passage is
    # written for the amount the question names.
    retrieved = {p.id: p for p in retrieval.passages}
    oracles = _with_derived([retrieved.get(p.id, p) for p in _oracles(fact_ids, retriever, plan.top_k)], hits,
                            plan.top_k)
    out = dict(record)
    if any(f.startswith(_FICTIONAL_PREFIX) for f in fact_ids) and record.get("expect_refusal"):
        # A made-up model, perhaps beside a real one whose figures the answer gives: keep the real one's passage.
        real = [p for p in oracles if p.kind == "vehicle"]
        context = real + [p for p in hits if p not in real][: plan.top_k - len(real)]
        if not real:  # a lone made-up model, not a comparison
            out["output"] = guard_refusal(_named(record, retrieval, fact_ids), _vehicles(context))
        return _with_context(out, context, REFUSAL)
    if not oracles:
        return _with_context(out, hits[: plan.top_k], OPEN)
    oracle_ids = {p.id for p in oracles}
    distractors = [p for p in hits if p.id not in oracle_ids]
    if _may_drop(fact_ids) and rng.random() < plan.distractor_only_share:
        dropped = {p.id for p in oracles if p.kind == "vehicle"}
        context = [p for p in distractors if dropped.isdisjoint(p.sources)][: plan.top_k]
        out["output"] = guard_refusal(oracles[0].title, _vehicles(context))
        out.pop("reference", None)
        out.pop("key_terms", None)
        return _with_context(out, context, DISTRACTOR_ONLY)
    context = distractors[: max(0, plan.top_k - len(oracles))]
    if rng.random() < plan.oracle_first_share:
        context = oracles + context
    else:
        for passage in oracles:
            context.insert(rng.randint(0, len(context)), passage)
    return _with_context(out, context, ORACLE)


def _oracles(fact_ids: Sequence[str], retriever: RetrieverLike, top_k: int) -> list[Passage]:
    """The record's facts that are passages, in the record's order, as many as fit in the context."""
    found: list[Passage] = []
    for fact_id in fact_ids:
        passage_id = fact_id[len(_VEHICLE_PREFIX):] if fact_id.startswith(_VEHICLE_PREFIX) else fact_id
        passage = retriever.passage(passage_id)
        if passage is not None and passage not in found:
            found.append(passage)
    return found[:top_k]


def _held(passage: Passage, held_out: AbstractSet[str]) -> bool:
    """A held-out fact's passage, or one computed from a held-out vehicle."""
    return passage.fact_id in held_out or any(_VEHICLE_PREFIX + s in held_out for s in passage.sources)


def _with_derived(oracles: list[Passage], hits: Sequence[Passage], top_k: int) -> list[Passage]:
    """The oracles with the retrieved derived passages computed only from their vehicles, placed after the
    vehicles' passages (as retrieval places them), as many as fit in the context."""
    ids = {p.id for p in oracles if p.kind == "vehicle"}
    derived = [p for p in hits if p.sources and ids.issuperset(p.sources) and p not in oracles]
    if not derived:
        return oracles
    last = max(i for i, p in enumerate(oracles) if p.kind == "vehicle")
    return (oracles[:last + 1] + derived + oracles[last + 1:])[:top_k]


def _may_drop(fact_ids: Sequence[str]) -> bool:
    """Only a question about exactly one vehicle (and at most a concept) can lose its answering passage."""
    return sum(f.startswith(_VEHICLE_PREFIX) for f in fact_ids) == 1


def _vehicles(passages: Sequence[Passage]) -> list[Passage]:
    return [p for p in passages if p.kind == "vehicle"]


def _named(record: Mapping[str, Any], retrieval: Retrieval, fact_ids: Sequence[str]) -> str:
    """How to name the made-up model in the refusal: as the guard read it, else from the made-up table."""
    if retrieval.unknown is not None:
        return retrieval.unknown.named
    from carexpert.knowledge import load_knowledge

    wanted = {f[len(_FICTIONAL_PREFIX):] for f in fact_ids if f.startswith(_FICTIONAL_PREFIX)}
    for model in load_knowledge().fictional:
        if model.id in wanted:
            with_year = str(model.year) in question_text(record)
            return f"{model.year} {model.make} {model.model}" if with_year else f"{model.make} {model.model}"
    return "vehicle you asked about"


def _with_context(record: dict[str, Any], context: Sequence[Passage], shape: str) -> dict[str, Any]:
    record["context"] = [p.text for p in context]
    record["context_ids"] = [p.id for p in context]
    record["grounding"] = shape
    return record


def shape_shares(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Share of records in each grounding shape (for stats and the renderer's tests)."""
    counts: dict[str, int] = {}
    total = 0
    for record in records:
        shape = str(record.get("grounding", "none"))
        counts[shape] = counts.get(shape, 0) + 1
        total += 1
    return {shape: count / total for shape, count in sorted(counts.items())} if total else {}
