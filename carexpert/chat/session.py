"""A multi-turn chat with a base model, a run's adapter or a merged export.

``ChatSession(...)`` is cheap (no imports of torch); ``load()`` does the heavy work
once, so the app can build a session on the UI thread and load it in a worker.
``stream(question)`` yields sanitized text chunks while the model writes them;
``cancel()`` from any thread stops the answer within a token, and the partial
answer stays in the history marked ``cancelled``. Every prompt is rendered with the
shared template (``carexpert.prompt``) with the earlier turns, dropping the oldest
turns when the conversation no longer fits the model's context window.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from carexpert.chat.fast import (
    STATIC_CACHE_TOKENS,
    DecodePlan,
    apply_plan,
    config_for_plan,
    local_weights_dir,
    plan_for,
    warm_up,
)
from carexpert.chat.sampling import SamplingSettings
from carexpert.chat.sanitize import sanitize_output
from carexpert.chat.streaming import IncrementalDecoder, StopStringFilter, stream_token_ids
from carexpert.chat.transcript import Turn, save_transcript
from carexpert.errors import UserError
from carexpert.modeling import load_for_inference, model_source
from carexpert.prompt import render_prompt, stop_strings

Progress = Callable[[str], None]
# Context length assumed when neither the model config nor the tokenizer states one.
FALLBACK_CONTEXT = 2048


@dataclass
class TurnStats:
    """Measurements of one answer. ``tokens_per_second`` is the decode rate after the first token."""

    prompt_tokens: int
    new_tokens: int
    seconds: float
    time_to_first_token: float | None
    tokens_per_second: float | None
    finish_reason: str
    dropped_turns: int
    max_new_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChatSession:
    """Load once, then ask, stream, cancel, undo, retry and save."""

    def __init__(self, config: Any, adapter_dir: str | Path | None = None, merged_dir: str | Path | None = None,
                 base_only: bool = False):
        if sum(bool(x) for x in (adapter_dir, merged_dir, base_only)) > 1:
            raise ValueError("give at most one of adapter_dir, merged_dir, base_only")
        self.config = config
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        self.merged_dir = Path(merged_dir) if merged_dir else None
        self.system_prompt: str = config.chat.system_prompt
        self.sampling = SamplingSettings.from_config(config.chat)
        self.history: list[Turn] = []
        self.last_stats: TurnStats | None = None
        self.plan: DecodePlan | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self._answering = threading.Lock()
        self._state = threading.Lock()
        self._current_stop: tuple[threading.Event, threading.Event] | None = None

    # ----- loading -------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """What the session talks to, in words."""
        if self.merged_dir:
            return f"merged model {self.merged_dir}"
        if self.adapter_dir:
            return f"adapter {self.adapter_dir} on {self.config.model.base_model}"
        return f"base model {self.config.model.base_model}"

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self, progress: Progress | None = None) -> "ChatSession":
        """Load the model and tokenizer (once; later calls do nothing)."""
        if self.loaded:
            return self
        say = progress or (lambda message: None)
        config = self.config
        if self.merged_dir:
            if not (self.merged_dir / "config.json").is_file():
                raise UserError("not a model folder (no config.json)", where=str(self.merged_dir),
                                fix="pass a folder written by 'carexpert export RUN --merged OUT'")
            config = replace(config, model=replace(config.model, base_model=str(self.merged_dir)))
        if self.adapter_dir and not (self.adapter_dir / "adapter_config.json").is_file():
            raise UserError("no adapter here (adapter_config.json missing)", where=str(self.adapter_dir),
                            fix="finish a training run first, or chat with --base")
        source = model_source(config, say)[0]  # converts the embedded model once, if needed
        self.plan = plan_for(config, local_weights_dir(source, config.model.revision))
        say(f"decoding path: {self.plan.describe()}")
        say(f"loading {self.source}")
        model, tokenizer = load_for_inference(config_for_plan(config, self.plan), self.adapter_dir,
                                              merge=self.plan.weights == "merged", progress=say)
        model.eval()
        self.model, self.tokenizer = model, tokenizer
        apply_plan(model, self.plan, max_cache_len=self.context_window)
        self.plan = warm_up(model, tokenizer, self.plan, say)
        say("ready")
        return self

    @property
    def context_window(self) -> int:
        """Longest sequence (prompt + answer) the model takes, in tokens."""
        self._require_loaded()
        text_config = self.model.config.get_text_config()
        limit = getattr(text_config, "max_position_embeddings", None)
        if not limit:
            limit = getattr(self.tokenizer, "model_max_length", None)
            limit = limit if limit and limit < 1_000_000 else FALLBACK_CONTEXT
        if self.plan is not None and self.plan.static_cache:
            limit = min(limit, STATIC_CACHE_TOKENS)  # the static cache is sized once, to this
        return int(limit)

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise RuntimeError("call ChatSession.load() first")

    # ----- prompts -------------------------------------------------------------------------
    def render(self, question: str, history: list[tuple[str, str]] | None = None) -> str:
        pairs = [(t.question, t.answer) for t in self.history] if history is None else history
        return render_prompt(question, system=self.system_prompt or None, history=pairs)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=True)["input_ids"]

    def prepare_prompt(self, question: str, max_new_tokens: int) -> tuple[list[int], int, int]:
        """Token ids of the prompt, how many old turns were dropped, and the answer budget.

        The oldest turns go first until prompt + ``max_new_tokens`` fits the context
        window (a binary search over how many to drop). When the question alone leaves
        less than ``max_new_tokens`` of room, the answer budget shrinks to what is left.
        """
        context = self.context_window
        pairs = [(t.question, t.answer) for t in self.history]
        budget = context - max_new_tokens

        def ids_without(dropped: int) -> list[int]:
            return self._encode(self.render(question, pairs[dropped:]))

        ids = ids_without(0)
        dropped = 0
        if len(ids) > budget and pairs:
            low, high = 1, len(pairs)  # the smallest drop count that fits lies in [low, high]
            while low < high:
                middle = (low + high) // 2
                if len(ids_without(middle)) <= budget:
                    high = middle
                else:
                    low = middle + 1
            dropped, ids = low, ids_without(low)
        room = context - len(ids)
        if room < 1:
            raise UserError(f"the question is too long: {len(ids)} tokens, the model reads at most {context}",
                            fix="ask a shorter question")
        return ids, dropped, min(max_new_tokens, room)

    def _generation_config(self, sampling: SamplingSettings, max_new_tokens: int) -> Any:
        generation = copy.deepcopy(self.model.generation_config)
        overrides = sampling.generation_overrides()
        overrides["max_new_tokens"] = max_new_tokens
        eos = generation.eos_token_id if generation.eos_token_id is not None else self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        overrides.update(eos_token_id=eos, pad_token_id=pad if not isinstance(pad, list) else pad[0],
                         max_length=None, min_length=0, min_new_tokens=None)
        generation.update(**overrides)
        return generation

    # ----- answering -----------------------------------------------------------------------
    def stream(self, text: str) -> Iterator[str]:
        """Yield the answer to ``text`` in sanitized chunks as they are generated.

        The turn is added to the history when the answer ends, however it ends: the
        model finished (``eos``), a stop string, ``max_new_tokens``, or ``cancel()`` /
        the caller abandoning the iterator (``cancelled``, partial answer kept).
        """
        self._require_loaded()
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
        import torch

        ids, dropped, max_new = self.prepare_prompt(question, sampling.max_new_tokens)
        generation = self._generation_config(sampling, max_new)
        cancel_event, stop_event = threading.Event(), threading.Event()
        with self._state:
            self._current_stop = (cancel_event, stop_event)
        decoder, stops = IncrementalDecoder(self.tokenizer), StopStringFilter(stop_strings())
        shown: list[str] = []
        count, first, last, reason = 0, None, None, None
        start = time.perf_counter()
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        try:
            with contextlib.closing(stream_token_ids(self.model, input_ids, generation, stop_event)) as tokens:
                for token, moment in tokens:
                    count, last = count + 1, moment
                    first = first or moment
                    if cancel_event.is_set():
                        reason = "cancelled"
                        break
                    text, hit = stops.feed(decoder.push(token))
                    if text:
                        chunk = sanitize_output(text)
                        shown.append(chunk)
                        yield chunk
                    if hit:
                        reason = "stop_string"
                        break
            if reason is None:
                tail = sanitize_output(stops.feed(decoder.flush())[0] + stops.flush())
                if tail:
                    shown.append(tail)
                    yield tail
                reason = "max_new_tokens" if count >= max_new else "eos"
        except (GeneratorExit, KeyboardInterrupt):
            reason = "cancelled"  # the caller stopped reading or the user pressed Ctrl+C
            raise
        except torch.cuda.OutOfMemoryError:
            reason = "error"
            raise UserError("out of GPU memory while answering",
                            fix="lower chat.max_new_tokens, /reset the history, or set chat.fast_path = '4bit'") from None
        except Exception:
            reason = "error"
            raise
        finally:
            with self._state:
                self._current_stop = None
            reason = reason or "cancelled"  # the caller stopped iterating
            end = last or time.perf_counter()
            rate = (count - 1) / (last - first) if count > 1 and last > first else None
            self.last_stats = TurnStats(
                prompt_tokens=len(ids), new_tokens=count, seconds=end - start,
                time_to_first_token=(first - start) if first else None, tokens_per_second=rate,
                finish_reason=reason, dropped_turns=dropped, max_new_tokens=max_new)
            if reason != "error":
                self.history.append(Turn(question=question, answer="".join(shown).strip(), finish_reason=reason,
                                         stats=self.last_stats.as_dict(), sampling=sampling.as_dict()))

    def ask(self, text: str) -> str:
        """The whole answer at once (scripts, evaluation)."""
        return "".join(self.stream(text))

    def cancel(self) -> None:
        """Stop the answer being generated (safe from any thread; does nothing when idle)."""
        with self._state:
            if self._current_stop is not None:
                for event in self._current_stop:
                    event.set()

    @property
    def answering(self) -> bool:
        return self._answering.locked()

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
                "decode_plan": self.plan.describe() if self.plan else ""}

    def save_transcript(self, path: str | Path) -> tuple[Path, Path]:
        """Save the conversation as ``path``.jsonl and ``path``.md (atomic writes)."""
        return save_transcript(path, list(self.history), self.transcript_meta())

