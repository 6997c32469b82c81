"""What the Chat screen's thread workers do: load a session's model, and stream one answer.

Both run off the UI thread and reach the screen only through the messages they post, so
the UI stays responsive however slow the model is. Neither raises: a failure of any kind
(out of memory, a broken model folder, a reply that fails) is posted, in the user's
words, for the screen to show while the app stays alive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message

from carexpert_tui import messages
from carexpert_tui.formatting import describe_error

Post = Callable[[Message], object]


def load_session(session: Any, post: Post) -> None:
    """Load the session's model: its progress, then ``ModelLoaded`` or ``ModelLoadFailed``."""
    post(messages.ModelLoadProgressed("loading…"))
    try:
        session.load(progress=lambda text: post(messages.ModelLoadProgressed(str(text))))
    except Exception as error:  # noqa: BLE001 - out of memory, a broken model folder: say so, keep the app alive
        post(messages.ModelLoadFailed(describe_error(error)))
        return
    post(messages.ModelLoaded(session.source))


def stream_answer(session: Any, question: str, sanitize: Callable[[str], str], post: Post,
                  stop_requested: Callable[[], bool]) -> None:
    """Answer ``question``: ``ReplyStarted``, a ``ReplyChunkReceived`` per chunk (escape sequences stripped),
    then ``ReplyFinished`` with the stats and sources, or ``ReplyFailed``.

    ``stop_requested`` says whether the user pressed stop meanwhile (the session's ``cancel()`` ends the
    stream; this marks the answer stopped).
    """
    post(messages.ReplyStarted(question))
    parts: list[str] = []
    try:
        for chunk in session.stream(question):
            text = sanitize(chunk)
            parts.append(text)
            post(messages.ReplyChunkReceived(text))
    except Exception as error:  # noqa: BLE001 - a reply failure of any kind is shown in the chat
        post(messages.ReplyFailed(describe_error(error)))
        return
    stats = session.last_stats.as_dict() if getattr(session, "last_stats", None) else {}
    stopped = stop_requested() or stats.get("finish_reason") == "cancelled"
    turn = session.history[-1] if session.history else None
    sources = [dict(source) for source in getattr(turn, "sources", [])] if turn is not None else []
    post(messages.ReplyFinished("".join(parts), stopped, stats, sources, bool(getattr(turn, "retrieval", False)),
                                getattr(session, "retrieval_problem", None)))
