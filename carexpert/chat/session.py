"""A conversation on top of the chat engine: history, undo, retry, transcripts, retrieval on or off.

``ChatSession(...)`` is cheap (no imports of torch); ``load()`` loads its ``ChatEngine``
once, so the app can build a session on the UI thread and load it in a worker.
``stream(question)`` yields sanitized text chunks while the model writes them;
``cancel()`` from any thread stops the answer within a token, and the partial
answer stays in the history marked ``cancelled``. Every prompt goes through the
engine (``grounding.chat_prompt``) with the earlier turns, dropping the oldest turns
when the conversation no longer fits the model's context window.

With retrieval on (``retrieval.enabled``, switched per conversation with
``retrieval_enabled``), each question is first looked up in the knowledge store; the
passages go into the prompt and the answer's sources are kept on its ``Turn``
(``last_sources`` for the latest).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from carexpert.chat.engine import ChatEngine, Progress, Reply, TurnStats
from carexpert.chat.grounding import Retriever
from carexpert.chat.sampling import SamplingSettings
from carexpert.chat.transcript import Turn, save_transcript
from carexpert.errors import UserError

__all__ = ["ChatSession", "TurnStats"]


class ChatSession:
    """Load once, then ask, stream, cancel, undo, retry and save."""

    def __init__(self, config: Any, adapter_dir: str | Path | None = None, merged_dir: str | Path | None = None,
                 base_only: bool = False, *, engine: ChatEngine | None = None, retriever: Retriever | None = None):
        self.engine = engine or ChatEngine(config, adapter_dir=adapter_dir, merged_dir=merged_dir,
                                           base_only=base_only, retriever=retriever)
        self.config = config
        self.system_prompt: str = config.chat.system_prompt
        self.sampling = SamplingSettings.from_config(config.chat)
        self.retrieval_enabled: bool = bool(config.retrieval.enabled)
        self.history: list[Turn] = []
        self.last_stats: TurnStats | None = None
        self._answering = threading.Lock()
        self._state = threading.Lock()
        self._current_cancel: threading.Event | None = None

    # ----- the engine underneath ------------------------------------------------------------
    @property
    def source(self) -> str:
        return self.engine.source

    @property
    def loaded(self) -> bool:
        return self.engine.loaded

    @property
    def model(self) -> Any:
        return self.engine.model

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def plan(self) -> Any:
        return self.engine.plan

    @property
    def context_window(self) -> int:
        return self.engine.context_window

    @property
    def retrieval_problem(self) -> str | None:
        """Why answers are closed-book although retrieval is on (no store built, ...), else None."""
        return self.engine.retrieval_problem

    def load(self, progress: Progress | None = None) -> ChatSession:
        """Load the model and tokenizer (once; later calls do nothing)."""
        self.engine.load(progress)
        return self

    # ----- prompts -------------------------------------------------------------------------
    def _pairs(self) -> list[tuple[str, str]]:
        return [(t.question, t.answer) for t in self.history]

    def render(self, question: str, history: list[tuple[str, str]] | None = None) -> str:
        """The prompt text for ``question`` after ``history`` (default: this conversation), without retrieval."""
        from carexpert.chat.grounding import chat_prompt

        return chat_prompt(question, system=self.system_prompt, history=self._pairs() if history is None else history)

    def prepare_prompt(self, question: str, max_new_tokens: int) -> tuple[list[int], int, int]:
        """Token ids of the prompt after this conversation, turns dropped to fit, and the answer budget."""
        return self.engine.prepare_prompt(question, max_new_tokens, history=self._pairs(), system=self.system_prompt)

    def _generation_config(self, sampling: SamplingSettings, max_new_tokens: int) -> Any:
        return self.engine.generation_config(sampling, max_new_tokens)

    # ----- answering -----------------------------------------------------------------------
    def stream(self, text: str) -> Iterator[str]:
        """Yield the answer to ``text`` in sanitized chunks as they are generated.

        The turn is added to the history when the answer ends, however it ends: the
        model finished (``eos``), a stop string, ``max_new_tokens``, the retrieval guard
        refused (``guard``), or ``cancel()`` / the caller abandoning the iterator
        (``cancelled``, partial answer kept).
        """
        if not self.loaded:
            raise RuntimeError("call ChatSession.load() first")
        question = text.strip()
        if not question:
            raise UserError("empty question", fix="type a question")
        if not self._answering.acquire(blocking=False):
            raise UserError("already answering", fix="wait for the answer or stop it first")
        try:
            sampling = replace(self.sampling).validate()
            yield from self._answer(question, sampling)
        finally:
            self._answering.release()

    def _answer(self, question: str, sampling: SamplingSettings) -> Iterator[str]:
        cancel = threading.Event()
        with self._state:
            self._current_cancel = cancel
        reply: Reply | None = None
        retrieval = None
        failed = False
        try:
            retrieval = self.engine.retrieve(question) if self.retrieval_enabled else None
            reply = self.engine.reply(question, sampling=sampling, history=self._pairs(), system=self.system_prompt,
                                      retrieval=retrieval, cancel=cancel)
            yield from reply
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except BaseException:
            failed = True
            raise
        finally:
            with self._state:
                self._current_cancel = None
            if reply is not None:
                reply.close()
                self.last_stats = reply.stats
                if reply.stats is not None and not failed and reply.stats.finish_reason != "error":
                    self.history.append(Turn(question=question, answer=reply.text,
                                             finish_reason=reply.stats.finish_reason, stats=reply.stats.as_dict(),
                                             sampling=sampling.as_dict(), sources=list(reply.sources),
                                             retrieval=retrieval is not None))

    def ask(self, text: str) -> str:
        """The whole answer at once (scripts, evaluation)."""
        return "".join(self.stream(text))

    def cancel(self) -> None:
        """Stop the answer being generated (safe from any thread; does nothing when idle)."""
        with self._state:
            if self._current_cancel is not None:
                self._current_cancel.set()

    @property
    def answering(self) -> bool:
        return self._answering.locked()

    @property
    def last_sources(self) -> list[dict[str, str]]:
        """The sources of the last answer ([] when it had none or there is no answer yet)."""
        return list(self.history[-1].sources) if self.history else []

    def set_retrieval(self, enabled: bool) -> None:
        """Turn retrieval on or off for the next answers (compare grounded and closed-book answers)."""
        self._refuse_while_answering()
        self.retrieval_enabled = bool(enabled)

    # ----- history -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the conversation (the model stays loaded)."""
        self._refuse_while_answering()
        self.history.clear()
        self.last_stats = None

    def undo(self) -> Turn | None:
        """Remove the last turn and return it (None when there is none)."""
        self._refuse_while_answering()
        return self.history.pop() if self.history else None

    def retry(self) -> Iterator[str]:
        """Ask the last question again (its old answer is dropped) and stream the new answer."""
        self._refuse_while_answering()
        if not self.history:
            raise UserError("nothing to retry yet", fix="ask a question first")
        return self.stream(self.history.pop().question)

    def _refuse_while_answering(self) -> None:
        if self.answering:
            raise UserError("an answer is being generated", fix="stop it first (Ctrl+C / cancel)")

    def transcript_meta(self) -> dict[str, Any]:
        return {"model": self.source, "system_prompt": self.system_prompt, "sampling": self.sampling.as_dict(),
                "decode_plan": self.plan.describe() if self.plan else "", "retrieval": self.retrieval_enabled}

    def save_transcript(self, path: str | Path) -> tuple[Path, Path]:
        """Save the conversation as ``path``.jsonl and ``path``.md (atomic writes)."""
        return save_transcript(path, list(self.history), self.transcript_meta())
