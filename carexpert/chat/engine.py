"""The chat engine: a loaded model that answers one question at a time, holding no conversation.

``ChatEngine(...)`` is cheap (no torch); ``load()`` does the heavy work once. ``reply(question,
history=..., sampling=..., retrieval=..., cancel=...)`` returns a ``Reply``: iterate it for
sanitized text chunks as the model writes them; when the iteration ends, however it ends,
``reply.stats`` says what happened. Nothing about the conversation is kept here: the CLI chat
and the app hold their history in a ``ChatSession`` on top of an engine, and the HTTP server
passes each request's messages straight in.

Decoding goes through the shared entry points (``fast.py``'s ``DecodePlan`` at load,
``streaming.stream_token_ids`` per answer), so a faster decoder there serves every surface.
Every prompt is rendered by ``grounding.chat_prompt``; retrieval is asked for through
``retrieve`` and runs on the decode thread, the one thread that touches the model, so a
store connection opened there is always used from the thread that opened it.
When ``retrieval.guard`` is on and the question names a vehicle the store does not know,
the answer is the guard's refusal, streamed without generating.

Setting ``cancel`` (any thread) stops the answer within one token.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

from carexpert.chat.fast import (
    STATIC_CACHE_TOKENS,
    DecodePlan,
    apply_plan,
    config_for_plan,
    local_weights_dir,
    plan_for,
    warm_up,
)
from carexpert.chat.grounding import Retriever, chat_prompt, open_configured_retriever, sources_of
from carexpert.chat.sampling import SamplingSettings
from carexpert.chat.sanitize import sanitize_output
from carexpert.chat.streaming import IncrementalDecoder, StopStringFilter, run_on_decode_thread, stream_token_ids
from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.modeling import load_for_inference, model_source
from carexpert.prompt import stop_strings
from carexpert.retrieval import Retrieval
from carexpert.runs.artifacts import is_adapter_dir

Progress = Callable[[str], None]
# Context length assumed when neither the model config nor the tokenizer states one.
FALLBACK_CONTEXT = 2048


@dataclass
class TurnStats:
    """Measurements of one answer. ``tokens_per_second`` is the decode rate after the first token.

    ``finish_reason``: ``eos`` (the model ended it), ``stop_string``, ``max_new_tokens``,
    ``cancelled``, ``guard`` (the retrieval guard's refusal, nothing generated) or ``error``.
    """

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


class _LinkedEvent(threading.Event):
    """The stop signal handed to ``stream_token_ids``: set by the engine, or by the caller's ``cancel``.

    ``generate`` checks ``is_set()`` after every token on the decode thread, so a caller
    setting its own event stops generation within one token without touching this one.
    """

    def __init__(self, cancel: threading.Event):
        super().__init__()
        self.cancel = cancel

    def is_set(self) -> bool:
        return super().is_set() or self.cancel.is_set()


class Reply:
    """One answer being written: iterate for text chunks; ``stats``, ``text`` and ``sources`` once it ends."""

    def __init__(self, chunks: Callable[[Reply], Generator[str, None, None]], retrieval: Retrieval | None):
        self.retrieval = retrieval
        self.sources: list[dict[str, str]] = sources_of(retrieval)
        self.stats: TurnStats | None = None
        self.parts: list[str] = []
        self._chunks = chunks(self)

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def close(self) -> None:
        """Stop early (the answer ends as ``cancelled``); safe to call after the end too."""
        self._chunks.close()

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()

    @property
    def finish_reason(self) -> str | None:
        return self.stats.finish_reason if self.stats else None


class ChatEngine:
    """Load once, then ``reply`` to any number of independent questions (one at a time per model)."""

    def __init__(self, config: Config, adapter_dir: str | Path | None = None, merged_dir: str | Path | None = None,
                 base_only: bool = False, retriever: Retriever | None = None):
        if sum(bool(x) for x in (adapter_dir, merged_dir, base_only)) > 1:
            raise ValueError("give at most one of adapter_dir, merged_dir, base_only")
        self.config = config
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        self.merged_dir = Path(merged_dir) if merged_dir else None
        self.plan: DecodePlan | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.retriever: Retriever | None = retriever
        self.retrieval_problem: str | None = None  # why retrieval is off although the config asks for it
        self._retriever_opened = retriever is not None

    # ----- loading -------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """What the engine talks to, in words."""
        if self.merged_dir:
            return f"merged model {self.merged_dir}"
        if self.adapter_dir:
            return f"adapter {self.adapter_dir} on {self.config.model.base_model}"
        return f"base model {self.config.model.base_model}"

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self, progress: Progress | None = None) -> ChatEngine:
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
        if self.adapter_dir and not is_adapter_dir(self.adapter_dir):
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
        self.plan = warm_up(model, tokenizer, self.plan, say, max_cache_len=self.context_window,
                            sampling=SamplingSettings.from_config(config.chat))
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
            raise RuntimeError("call load() first")

    # ----- retrieval -----------------------------------------------------------------------
    def retrieve(self, question: str) -> Retrieval | None:
        """The passages for ``question``, or None when retrieval is off (config) or unavailable.

        The retriever is opened on first use. If opening fails with a UserError (no store
        built yet, say), chat goes on closed-book and ``retrieval_problem`` says why.
        """
        if not self._retriever_opened:
            self._retriever_opened = True
            try:
                self.retriever = run_on_decode_thread(open_configured_retriever, self.config,
                                                      self.count_tokens if self.loaded else None)
            except UserError as error:
                self.retrieval_problem = error.render()
                self.retriever = None
        if self.retriever is None:
            return None
        return run_on_decode_thread(self.retriever.retrieve, question)

    # ----- prompts -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=True)["input_ids"]

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (no special tokens), for sizing retrieved context."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prepare_prompt(self, question: str, max_new_tokens: int, *, history: Sequence[tuple[str, str]] = (),
                       system: str | None = None, retrieval: Retrieval | None = None) -> tuple[list[int], int, int]:
        """Token ids of the prompt, how many old turns were dropped, and the answer budget.

        The oldest turns go first until prompt + ``max_new_tokens`` fits the context
        window (a binary search over how many to drop). When the question alone leaves
        less than ``max_new_tokens`` of room, the answer budget shrinks to what is left.
        """
        self._require_loaded()
        context = self.context_window
        pairs = list(history)
        budget = context - max_new_tokens

        def ids_without(dropped: int) -> list[int]:
            return self.encode(chat_prompt(question, system=system, history=pairs[dropped:], retrieval=retrieval))

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

    def generation_config(self, sampling: SamplingSettings, max_new_tokens: int) -> Any:
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
    def reply(self, question: str, *, sampling: SamplingSettings, history: Sequence[tuple[str, str]] = (),
              system: str | None = None, retrieval: Retrieval | None = None, guard: bool | None = None,
              stop: Sequence[str] = (), seed: int | None = None, cancel: threading.Event | None = None) -> Reply:
        """Answer ``question`` after ``history``; iterate the result for chunks.

        ``sampling`` is validated here; ``guard`` defaults to ``retrieval.guard`` in the
        config; ``stop`` adds stop strings to the template's own; ``seed`` makes sampling
        repeatable. Raises UserError before anything is generated when the input is bad.
        """
        self._require_loaded()
        question = question.strip()
        if not question:
            raise UserError("empty question", fix="type a question")
        sampling = replace(sampling).validate()
        cancel = cancel or threading.Event()
        guard = self.config.retrieval.guard if guard is None else guard
        if guard and retrieval is not None and retrieval.unknown is not None:
            refusal = retrieval.refusal or ""
            return Reply(lambda reply: self._refuse(reply, refusal, cancel), retrieval)
        ids, dropped, max_new = self.prepare_prompt(question, sampling.max_new_tokens, history=history,
                                                    system=system, retrieval=retrieval)
        stops = [*stop_strings(), *(s for s in stop if s)]
        return Reply(lambda reply: self._generate(reply, ids, dropped, max_new, sampling, stops, seed, cancel),
                     retrieval)

    def _refuse(self, reply: Reply, text: str, cancel: threading.Event) -> Generator[str, None, None]:
        """The guard's answer, streamed word by word without running the model."""
        start, reason = time.perf_counter(), "guard"
        try:
            for number, word in enumerate(text.split(" ")):
                if cancel.is_set():
                    reason = "cancelled"
                    break
                chunk = sanitize_output(word if number == 0 else " " + word)
                reply.parts.append(chunk)
                yield chunk
        except GeneratorExit:
            reason = "cancelled"
            raise
        finally:
            reply.stats = TurnStats(prompt_tokens=0, new_tokens=len(self.encode(reply.text)) if reply.parts else 0,
                                    seconds=time.perf_counter() - start, time_to_first_token=None,
                                    tokens_per_second=None, finish_reason=reason, dropped_turns=0, max_new_tokens=0)

    def _generate(self, reply: Reply, ids: list[int], dropped: int, max_new: int, sampling: SamplingSettings,
                  stops: list[str], seed: int | None, cancel: threading.Event) -> Generator[str, None, None]:
        import torch

        generation = self.generation_config(sampling, max_new)
        stop_event = _LinkedEvent(cancel)
        decoder, stop_filter = IncrementalDecoder(self.tokenizer), StopStringFilter(stops)
        count, reason = 0, None
        first: float | None = None
        last: float | None = None
        start = time.perf_counter()
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        if seed is not None:
            torch.manual_seed(seed)  # one generation runs at a time, so the global generator is ours
        try:
            stream = cast(Generator[tuple[int, float], None, None],  # a generator: closing it stops the decode
                          stream_token_ids(self.model, input_ids, generation, stop_event))
            with contextlib.closing(stream) as tokens:
                for token, moment in tokens:
                    count, last = count + 1, moment
                    first = first or moment
                    if cancel.is_set():
                        reason = "cancelled"
                        break
                    text, hit = stop_filter.feed(decoder.push(token))
                    chunk = sanitize_output(text) if text else ""
                    if chunk:
                        reply.parts.append(chunk)
                        yield chunk
                    if hit:
                        reason = "stop_string"
                        break
            if reason is None and cancel.is_set():
                reason = "cancelled"
            if reason is None:
                tail = sanitize_output(stop_filter.feed(decoder.flush())[0] + stop_filter.flush())
                if tail:
                    reply.parts.append(tail)
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
            reason = reason or "cancelled"  # the caller stopped iterating
            end = last or time.perf_counter()
            rate = (count - 1) / (last - first) if count > 1 and last is not None and first is not None \
                and last > first else None
            reply.stats = TurnStats(
                prompt_tokens=len(ids), new_tokens=count, seconds=end - start,
                time_to_first_token=(first - start) if first else None, tokens_per_second=rate,
                finish_reason=reason, dropped_turns=dropped, max_new_tokens=max_new)
