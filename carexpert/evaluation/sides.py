"""The sides of an evaluation: which model answers, and whether it reads retrieved passages.

Every held-out question can be answered four ways, from one set of weights:

=================  ===========  ==========================================================
side               adapter      prompt
=================  ===========  ==========================================================
``base_closed``    off          the question alone (closed-book)
``base_rag``       off          the question with the passages retrieved for it
``tuned_closed``   on           the question alone
``tuned_rag``      on           the question with the passages retrieved for it
=================  ===========  ==========================================================

Comparing them separates what retrieval gives (``base_rag`` vs ``base_closed``), what
training gives (``tuned_closed`` vs ``base_closed``) and what training to read gives
(``tuned_rag`` vs ``base_rag``). By default the retrieval sides follow ``retrieval.enabled``
and the base sides follow ``eval.compare_base``; ``carexpert eval RUN --sides ...`` picks any.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from carexpert.errors import UserError


@dataclass(frozen=True)
class Side:
    name: str
    model: str  # "base" (adapter off) or "tuned" (adapter on)
    rag: bool   # the prompt carries the retrieved passages

    @property
    def label(self) -> str:
        """How tables and progress lines name it: 'tuned + retrieval', 'base closed-book'."""
        return f"{self.model} + retrieval" if self.rag else f"{self.model} closed-book"

    @property
    def short(self) -> str:
        """A column heading: 'base', 'base+rag', 'tuned', 'tuned+rag'."""
        return f"{self.model}+rag" if self.rag else self.model


# Display order: base before tuned (the arrow reads base → tuned), closed-book before retrieval.
SIDES: dict[str, Side] = {side.name: side for side in (
    Side("base_closed", "base", False), Side("base_rag", "base", True),
    Side("tuned_closed", "tuned", False), Side("tuned_rag", "tuned", True))}
SIDE_NAMES = tuple(SIDES)
MODELS = ("base", "tuned")
ALL = "all"


def order(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` in display order, each once."""
    wanted = set(names)
    return tuple(name for name in SIDE_NAMES if name in wanted)


def parse_sides(text: str) -> tuple[str, ...]:
    """'tuned_rag,base_rag' (or 'all') -> the side names in display order; a UserError names a bad one."""
    names = [part.strip().replace("-", "_") for part in text.split(",") if part.strip()]
    if names == [ALL]:
        return SIDE_NAMES
    unknown = [name for name in names if name not in SIDES]
    if unknown or not names:
        raise UserError(f"unknown evaluation side(s) {', '.join(unknown) or repr(text)}", where="--sides",
                        fix=f"pick from {', '.join(SIDE_NAMES)} (comma-separated) or 'all'")
    return order(names)


def default_sides(retrieval_enabled: bool, compare_base: bool) -> tuple[str, ...]:
    """The sides an evaluation runs when none are named: retrieval sides follow ``retrieval.enabled``,
    base sides ``eval.compare_base``."""
    return order(side.name for side in SIDES.values()
                 if (retrieval_enabled or not side.rag) and (compare_base or side.model == "tuned"))


def headline_side(sides: Iterable[str]) -> str | None:
    """The side that stands for "the tuned model" in one-number views (compare, overview):
    tuned + retrieval when it was evaluated, else tuned closed-book."""
    present = set(sides)
    return next((name for name in ("tuned_rag", "tuned_closed") if name in present), None)


def baseline_side(sides: Iterable[str], against: str | None) -> str | None:
    """The base side to set beside ``against`` (same retrieval setting when evaluated, else the other)."""
    present = set(sides)
    if against is None:
        return None
    rag = SIDES[against].rag
    preferred = ("base_rag", "base_closed") if rag else ("base_closed", "base_rag")
    return next((name for name in preferred if name in present), None)
