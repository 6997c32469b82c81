"""Filling answer and question patterns, and small English helpers.

A pattern names its fields in braces. ``choose`` only considers alternatives whose
fields are all known, so a missing figure (a blank in the tables) can never produce
"None hp"; ``compose`` builds an answer from slots of alternatives (see answers.toml).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

_FIELD = re.compile(r"{(\w+)}")


def fields_of(pattern: str) -> set[str]:
    return set(_FIELD.findall(pattern))


def fill(pattern: str, values: Mapping[str, Any]) -> str | None:
    """The pattern with its fields filled, or None when a field is unknown."""
    if any(values.get(name) is None for name in fields_of(pattern)):
        return None
    return _FIELD.sub(lambda m: str(values[m.group(1)]), pattern)


def choose(rng: random.Random, alternatives: Sequence[str], values: Mapping[str, Any]) -> str | None:
    """One alternative, picked at random among those whose fields are all known."""
    usable = [a for a in alternatives if all(values.get(n) is not None for n in fields_of(a))]
    if not usable:
        return None
    return fill(rng.choice(usable), values)


def compose(rng: random.Random, slots: Sequence[Sequence[str]], values: Mapping[str, Any]) -> str | None:
    """An answer from slots: the first slot must fill; later ones are skipped when they can't."""
    parts = []
    for index, slot in enumerate(slots):
        text = choose(rng, slot, values)
        if text is None and index == 0:
            return None
        if text:
            parts.append(text)
    return " ".join(parts)


def a_or_an(phrase: str) -> str:
    """'an 8-speed automatic', 'a CVT', 'an IVT', 'a 10-speed'."""
    first = phrase.strip().split(" ")[0].lower()
    vowel_sound = first[:1] in "aeio8" or first.startswith(("11-", "18-", "hon")) or first in {"suv", "ev", "hev", "mpv"}
    if first.startswith(("uni", "one", "use")):
        vowel_sound = False
    if first[:1] == "u" and not first.startswith("uni"):
        vowel_sound = True
    return f"{'an' if vowel_sound else 'a'} {phrase}"


def capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def human_list(items: Sequence[str], conjunction: str = "and") -> str:
    """['a', 'b', 'c'] -> 'a, b, and c'."""
    items = [i for i in items if i]
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return ", ".join(items[:-1]) + f", {conjunction} " + items[-1]


def sentence(text: str) -> str:
    """Capitalized and ending with a full stop."""
    text = capitalize_first(text.strip())
    return text if text.endswith((".", "!", "?")) else text + "."


def join_sentences(parts: Sequence[str | None]) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())
