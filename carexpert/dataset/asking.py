"""Turning a question pattern into an instruction (and sometimes an Alpaca ``input``).

About one question in six moves the vehicle name into the ``input`` field ("What's the
horsepower of this car?" + "2024 Toyota Camry LE"), so the model learns both Alpaca
shapes. Openers and closers vary the answer's framing without changing its facts.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from carexpert.dataset.text import capitalize_first, fill

INPUT_SHARE = 0.16


def ask_about(rng: random.Random, pattern: str, name: str, placeholder: str = "v") -> tuple[str, str]:
    """(instruction, input) for a question about one named thing."""
    marker = "the {" + placeholder + "}"
    if marker in pattern and rng.random() < INPUT_SHARE:
        return capitalize_first(pattern.replace(marker + "'s", "this car's").replace(marker, "this car")), name
    return capitalize_first(pattern.replace("{" + placeholder + "}", name)), ""


def fill_question(pattern: str, values: Mapping[str, object]) -> str:
    text = fill(pattern, values)
    if text is None:
        raise KeyError(f"question pattern {pattern!r} needs a field that is missing")
    return capitalize_first(text)


def with_lead_in(rng: random.Random, question: str, framing: Mapping[str, Any]) -> str:
    """Sometimes prefix a conversational lead-in ("Quick question: what is ...?")."""
    if rng.random() >= float(framing.get("share", 0.0)):
        return question
    prefix = str(rng.choice(list(framing["prefixes"])))
    first = question.split(" ", 1)[0]
    keep_case = first == "I" or first.startswith("I'") or (first.isupper() and len(first) > 1)
    body = question if keep_case or prefix.endswith((". ", "? ")) else question[:1].lower() + question[1:]
    return prefix + body


def frame(rng: random.Random, body: str, openers: Sequence[str], closers: Sequence[str] = ()) -> str:
    """The answer body with an optional friendly opener and closer."""
    opener = rng.choice(list(openers)) if openers else ""
    closer = rng.choice(list(closers)) if closers else ""
    text = opener + body.strip()
    return f"{text} {closer}".strip() if closer else text
