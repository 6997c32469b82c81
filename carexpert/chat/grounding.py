"""Retrieval in chat: the one prompt function, the one place the retriever is opened, and an answer's sources.

Every chat prompt (the CLI chat, the app, the HTTP server) is rendered by ``chat_prompt``
from the question, the earlier turns and an optional ``Retrieval``; nothing else calls
``render_prompt`` for chat, so what the model reads is the same on every surface and the
same as in training (``carexpert.prompt``).

``open_configured_retriever`` is the only place chat opens the knowledge store, through
``carexpert.retrieval.open_retriever`` when ``retrieval.enabled``. A build without that
function (the store not merged yet) answers closed-book instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from carexpert.config import Config
from carexpert.prompt import render_prompt
from carexpert.retrieval import Retrieval


class Retriever(Protocol):
    """Anything that turns a question into a ``Retrieval`` (the knowledge store, or a test's fake)."""

    def retrieve(self, question: str) -> Retrieval: ...


def chat_prompt(question: str, *, system: str | None, history: Sequence[tuple[str, str]] = (),
                retrieval: Retrieval | None = None) -> str:
    """The full prompt for one chat answer: system line, earlier turns, this turn's passages and question."""
    context = retrieval.texts() if retrieval is not None else ()
    return render_prompt(question, system=system or None, history=history, context=context)


def open_configured_retriever(config: Config, count_tokens: Callable[[str], int] | None = None) -> Retriever | None:
    """The configured knowledge-store retriever, or None when retrieval is off or not available in this build."""
    if not config.retrieval.enabled:
        return None
    try:
        from carexpert.retrieval import open_retriever
    except ImportError:  # the knowledge store is not part of this build: answer closed-book
        return None
    return open_retriever(config, count_tokens=count_tokens)


def sources_of(retrieval: Retrieval | None) -> list[dict[str, str]]:
    """The passages an answer was given, as plain dicts (``id``, ``kind``, ``title``), best first."""
    if retrieval is None:
        return []
    return [{"id": passage.id, "kind": passage.kind, "title": passage.title} for passage in retrieval.passages]


def describe_sources(sources: Sequence[dict[str, str]]) -> str:
    """"2024 Toyota Camry LE (toyota-camry-2024-le); Turbocharger (concept:turbo)" or ''."""
    return "; ".join(f"{source.get('title') or source.get('id')} ({source.get('id')})" for source in sources)
