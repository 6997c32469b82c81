"""Which retrieved passages an answer used.

Retrieval puts several passages in front of the model; whether it read the right one shows
in what it says. A retrieved passage counts as **used** when the answer states

- one of the passage's figures (a spec number with its unit, matched after conversion within
  ``eval.numeric_tolerance``, so "151 kW" uses a passage that says "203 hp (151 kW)"), not a
  number the question itself gave; or
- at least ``MIN_TERMS`` of the passage's *key terms* (all of them when it has fewer): its
  content words (stemmed, no stop words) that the question does not contain and no other
  retrieved passage contains, so words every vehicle passage shares ("horsepower", "torque")
  say nothing about which one was read.

An answer may use several passages (a comparison) or none (closed-book knowledge, a refusal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from carexpert.evaluation.concepts import content_words, normalize
from carexpert.evaluation.figures import spec_figures
from carexpert.evaluation.units import extract_quantities

MIN_TERMS = 3


def _same_figure(a, b, tolerance: float) -> bool:
    if a.family != b.family:
        return False
    low, high = a.value_in(b.unit)
    return abs(low - b.low) <= tolerance * abs(b.low) + 1e-9 and abs(high - b.high) <= tolerance * abs(b.high) + 1e-9


def used_passages(answer: str, passages: Sequence[Any], *, question: str = "", tolerance: float = 0.03) -> list[str]:
    """Ids of the ``passages`` (objects with ``id`` and ``text``; best first) that ``answer`` used, in their order."""
    if not answer.strip() or not passages:
        return []
    figures = spec_figures(answer)
    given = [q for q in extract_quantities(question) if q.unit is not None]
    stated = [f for f in figures if not any(_same_figure(f, g, tolerance) for g in given)]
    answer_words = set(normalize(answer))
    words = [content_words(p.text, question) for p in passages]
    used = []
    for index, passage in enumerate(passages):
        theirs = spec_figures(passage.text)
        if any(_same_figure(f, p, tolerance) for f in stated for p in theirs):
            used.append(passage.id)
            continue
        others = set().union(*(w for i, w in enumerate(words) if i != index)) if len(words) > 1 else set()
        key_terms = words[index] - others
        if key_terms and len(key_terms & answer_words) >= min(MIN_TERMS, len(key_terms)):
            used.append(passage.id)
    return used
