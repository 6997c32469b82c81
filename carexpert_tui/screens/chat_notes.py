"""The two lines under each chat answer: how it ended, and what it was grounded in.

Kept apart from the widgets so the wording (the user compares answers by it) is one
function each, testable without an app.
"""

from __future__ import annotations

from typing import Any


def sources_note(sources: list[dict[str, str]], retrieval: bool, finish_reason: str | None,
                 problem: str | None = None) -> str:
    """"sources: 2024 Toyota Camry LE · Turbocharger" under an answer (a passage retrieval computed for the
    question, a comparison or a fuel cost, is marked "(computed)")."""
    if finish_reason == "guard":
        return "refused by the retrieval guard: that vehicle is not in the knowledge store"
    if not retrieval:
        return "closed-book (retrieval off)"
    if not sources:
        return f"closed-book: retrieval is unavailable ({problem.splitlines()[0]})" if problem else "no passages found"
    return "sources: " + " · ".join(str(source.get("title") or source.get("id"))
                                    + (" (computed)" if source.get("kind") == "derived" else "") for source in sources)


def finish_note(stats: dict[str, Any], stopped: bool) -> str:
    """"stopped · 12 tokens · 41 tok/s" under an answer."""
    parts = ["stopped" if stopped else (stats.get("finish_reason") or "done")]
    if stats.get("new_tokens") is not None:
        parts.append(f"{stats['new_tokens']} tokens")
    if stats.get("tokens_per_second"):
        parts.append(f"{stats['tokens_per_second']:.0f} tok/s")
    return " · ".join(parts)
