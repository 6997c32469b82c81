"""The Alpaca record the generator emits, and the question key that keeps splits honest.

A record is ``{"id", "instruction", "input", "output", "category", "fact_ids", ...}`` plus,
where they apply, machine-checkable expectations for evaluation: ``reference`` (numbers
stated in the answer, keyed with their unit, e.g. ``hp`` or ``torque_nm``), ``key_terms``
(concept words the answer uses) and ``expect_refusal`` (questions about cars that do not
exist). Questions are compared in normalized form, so "What's the 0–60?" and "whats the
0-60" count as the same question when checking for leakage.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2019": "'", "\u00b7": " "})
_NON_WORD = re.compile(r"[^a-z0-9$%/.\- ]+")
_SPACES = re.compile(r"\s+")


def normalize_question(instruction: str, input_text: str = "") -> str:
    """Lower-cased, punctuation-light, whitespace-collapsed question (instruction + input)."""
    text = unicodedata.normalize("NFKC", f"{instruction} {input_text}").translate(_DASHES).lower()
    text = _NON_WORD.sub(" ", text.replace("'", ""))
    text = re.sub(r"(?<!\d)[.\-/](?!\d)", " ", text)  # keep 2.5, 0-60, L/100 but not sentence dots
    return _SPACES.sub(" ", text).strip()


def record_id(category: str, question_key: str) -> str:
    """Stable id from the normalized question: the same question always gets the same id."""
    return f"{category}-{hashlib.sha1(question_key.encode('utf-8')).hexdigest()[:12]}"


@dataclass
class Draft:
    """One generated question and answer, before it becomes a record."""

    instruction: str
    output: str
    kind: str
    fact_ids: tuple[str, ...]
    input: str = ""
    reference: dict[str, float] = field(default_factory=dict)
    key_terms: list[str] = field(default_factory=list)
    expect_refusal: bool = False

    def to_record(self, category: str) -> dict[str, Any]:
        key = normalize_question(self.instruction, self.input)
        record: dict[str, Any] = {
            "id": record_id(category, key), "instruction": self.instruction, "input": self.input,
            "output": self.output, "category": category, "kind": self.kind, "fact_ids": list(self.fact_ids)}
        if self.reference:
            record["reference"] = dict(self.reference)
        if self.key_terms:
            record["key_terms"] = list(self.key_terms)
        if self.expect_refusal:
            record["expect_refusal"] = True
        return record


@dataclass(frozen=True)
class Item:
    """One fact-and-question-kind the generator can phrase many ways (``build`` picks a phrasing)."""

    key: str
    fact_ids: tuple[str, ...]
    build: Callable[..., Draft | None]


def mentioned(output: str, text: str) -> bool:
    """Whether a formatted number (e.g. '3,310' or '5.8') appears in the answer as a whole number."""
    pattern = r"(?<![\w,.\-])" + re.escape(text) + r"(?![\w]|[.,]\d|-\w)"
    return re.search(pattern, output) is not None


def stated_reference(output: str, candidates: Mapping[str, tuple[float, str]]) -> dict[str, float]:
    """The reference values (key -> number) whose formatted text the answer actually states."""
    return {key: value for key, (value, text) in candidates.items() if mentioned(output, text)}


def terms_in(output: str, terms: tuple[str, ...] | list[str]) -> list[str]:
    """The key terms that the answer text contains (case-insensitive)."""
    lowered = output.lower()
    return [term for term in terms if term.lower() in lowered]
