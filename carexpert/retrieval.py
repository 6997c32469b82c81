"""Question in, passages out: the one retrieval step shared by training data, evaluation, chat and serving.

Entity matching runs first (make / model / year / trim, with aliases and typo tolerance),
then full-text ranking (SQLite FTS5, bm25) fills the remaining places. The passages go
into the prompt through ``carexpert.prompt.render_prompt(..., context=retrieval.texts())``.

When a question names a make and model that the store does not know, ``Retrieval.unknown``
says so and ``Retrieval.refusal`` holds the guard's answer: the same words the model is
trained to give when no passage holds the figure (``guard_refusal``).

Import everything retrieval-related from here (``Passage``, ``Hit``, ``Retrieval``,
``Retriever``, ``open_retriever``, ``guard_refusal``); the store behind it lives in
``carexpert.knowledge.store``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Passage:
    """One retrievable passage of the knowledge store."""

    id: str     # a vehicle: its id in vehicles.csv; others: "concept:<id>", "maintenance:<id>", "buying:<id>", "note:..."
    kind: str   # "vehicle", "concept", "maintenance", "buying" or "note"
    title: str  # "2024 Toyota Camry LE", "Turbocharger", ...
    text: str   # what the model reads (begins with the title)

    @property
    def fact_id(self) -> str:
        """The id that dataset records use in ``fact_ids`` ("vehicle:<id>" for a vehicle)."""
        return f"vehicle:{self.id}" if self.kind == "vehicle" else self.id


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    how: str  # "entity" (named in the question) or "text" (full-text rank)


@dataclass(frozen=True)
class UnknownVehicle:
    """A make and model the question names that the store does not hold."""

    named: str                          # as the question wrote it, e.g. "2024 Toyota Zephyr"
    suggestions: tuple[Passage, ...]    # the closest real vehicles the store does have


@dataclass(frozen=True)
class Retrieval:
    question: str
    hits: tuple[Hit, ...]
    unknown: UnknownVehicle | None = None

    @property
    def passages(self) -> tuple[Passage, ...]:
        return tuple(hit.passage for hit in self.hits)

    def texts(self) -> list[str]:
        """The passage texts, best first, for ``render_prompt(context=...)``."""
        return [hit.passage.text for hit in self.hits]

    @property
    def refusal(self) -> str | None:
        """The guard's answer when the question names an unknown make and model, else None."""
        return guard_refusal(self.unknown.named, self.unknown.suggestions) if self.unknown else None


def guard_refusal(named: str, suggestions: Sequence[Passage] = ()) -> str:
    """The answer when no passage holds the vehicle asked about (the guard's words and the training target)."""
    text = f"I have no record of the {named} in my data, so I don't have verified figures for it and won't guess."
    names = [p.title for p in suggestions if p.kind == "vehicle"][:2]
    if len(names) == 2:
        text += f" The closest models I do have are the {names[0]} and the {names[1]}."
    elif names:
        text += f" The closest model I do have is the {names[0]}."
    return text
