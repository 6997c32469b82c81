"""Retrieval for the evaluation's retrieval sides: one retrieval per question, shared by both models.

Each question is sent to the retriever once (``retrieve(question) -> carexpert.retrieval.Retrieval``);
base + retrieval and tuned + retrieval read the same passages, so they differ only in the
adapter. What was retrieved is saved with the item (``retrieved``: passage id, kind, title,
score, how it was found, its text and, for a passage computed for the question, the vehicles
it was computed from, best first) so an answer can be traced to the passage
it used, and saved answers can be scored again without the store.

The guard: with ``retrieval.guard`` on, a question whose retrieval names a make and model the
store does not know (``Retrieval.unknown``) is answered with ``Retrieval.refusal`` on the
retrieval sides, without generating (the same words the model is trained to give).

``open_eval_retriever`` is the one place the evaluation opens the real retriever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from carexpert.config import Config
from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.generate import EvaluationCancelled, ProgressCallback
from carexpert.retrieval import Passage, Retrieval


@dataclass
class CaseRetrieval:
    """What retrieval gave one question: its passages (best first) and, if the guard answers, the refusal."""

    hits: list[dict[str, Any]]          # JSON-ready: id, kind, title, score, how, text
    unknown: str | None = None          # the unknown make and model the question names
    refusal: str | None = None          # the guard's answer (only when the guard is on and it applies)

    @property
    def texts(self) -> list[str]:
        return [str(hit["text"]) for hit in self.hits]

    @property
    def passages(self) -> list[Passage]:
        return passages_of(self.hits)


def passages_of(hits: Sequence[dict[str, Any]] | None) -> list[Passage]:
    """Passages from saved ``retrieved`` entries (for attribution when rescoring)."""
    return [Passage(id=str(h.get("id")), kind=str(h.get("kind", "")), title=str(h.get("title", "")),
                    text=str(h.get("text", "")), sources=tuple(str(s) for s in h.get("sources") or ()))
            for h in hits or ()]


def question_text(case: EvalCase) -> str:
    """What the retriever is asked: the question, and its input when it has one ("2023 Pilot LX")."""
    return f"{case.question}\n{case.input}".strip() if case.input.strip() else case.question


def case_retrieval(retrieval: Retrieval, guard: bool) -> CaseRetrieval:
    hits = [{"id": hit.passage.id, "kind": hit.passage.kind, "title": hit.passage.title,
             "score": round(float(hit.score), 4), "how": hit.how, "text": hit.passage.text,
             **({"sources": list(hit.passage.sources)} if hit.passage.sources else {})}
            for hit in retrieval.hits]
    unknown = retrieval.unknown.named if retrieval.unknown is not None else None
    return CaseRetrieval(hits, unknown, retrieval.refusal if guard and unknown else None)


def retrieve_all(retriever: Any, cases: Sequence[EvalCase], *, guard: bool, progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None) -> tuple[list[CaseRetrieval], float]:
    """Retrieve for every case; returns the retrievals and the seconds it took."""
    started = time.perf_counter()
    found = []
    if progress:
        progress("retrieve", 0, len(cases))
    for index, case in enumerate(cases, start=1):
        if cancel is not None and cancel.is_set():
            raise EvaluationCancelled()
        found.append(case_retrieval(retriever.retrieve(question_text(case)), guard))
        if progress and (index % 50 == 0 or index == len(cases)):
            progress("retrieve", index, len(cases))
    return found, time.perf_counter() - started


def open_eval_retriever(config: Config, count_tokens: Callable[[str], int] | None = None) -> Any:
    """The knowledge store's retriever for ``config`` (``carexpert.retrieval.open_retriever``; it builds the
    store when it is missing). ``count_tokens`` left out, the context budget is counted the way the
    training records were grounded."""
    from carexpert.retrieval import open_retriever

    return open_retriever(config, count_tokens=count_tokens)
