"""Token streaming: the decode loop in a thread, token ids out through a queue.

The loop is carexpert's own (``graph_decode``) when one is attached to the model
(``fast.warm_up`` does that) and the answer's settings are ones it implements, else
``model.generate``. Either checks a stop ``Event`` after every token, so setting it
stops generation within a token or two. Token ids (not text) cross the thread boundary with a
timestamp each, so the consumer measures time to first token exactly and turns ids
into text itself (``IncrementalDecoder``), holding back anything that could be the
start of a stop string (``StopStringFilter``).

Every ``generate`` runs on one long-lived decode thread (``run_on_decode_thread``),
the warm-up included: the CUDA graphs that ``torch.compile`` records in
``reduce-overhead`` mode belong to the thread that recorded them, and a fresh thread
per answer failed inside ``generate`` with an AssertionError on the first answer
after the warm-up (seen on an H100, docs/benchmarks.md).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_END = object()
_decode_thread: ThreadPoolExecutor | None = None
_decode_lock = threading.Lock()
_generating = threading.Event()


def generation_in_progress() -> bool:
    """Whether a ``generate`` started by ``stream_token_ids`` is running right now."""
    return _generating.is_set()


def _decode_executor() -> ThreadPoolExecutor:
    global _decode_thread
    with _decode_lock:
        if _decode_thread is None:
            _decode_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carexpert-generate")
        return _decode_thread


def submit_to_decode_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Run ``fn`` on the one thread that does all decoding (see the module docstring)."""
    return _decode_executor().submit(fn, *args, **kwargs)


def run_on_decode_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on the decode thread; waits and returns its result (or raises its error)."""
    return submit_to_decode_thread(fn, *args, **kwargs).result()


class IncrementalDecoder:
    """Token ids in, new text out, with correct spaces and whole UTF-8 characters.

    Decodes a short window of ids (from the previous emit point) so the cost per token
    is constant, and holds text back while it ends in an incomplete byte sequence
    (the replacement character), as text-generation-inference does.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        prefix_text = self._decode(self.ids[self.prefix_offset:self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text):]
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end)."""
        prefix_text = self._decode(self.ids[self.prefix_offset:self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset:])
        self.prefix_offset = self.read_offset = len(self.ids)
        return new_text[len(prefix_text):].replace("\ufffd", "")


class StopStringFilter:
    """Cuts the answer at the first stop string, never printing part of one.

    ``feed`` returns the text that is safe to show and whether a stop string was hit;
    the longest tail that could still grow into a stop string is held back.
    """

    def __init__(self, stop_strings: Sequence[str]):
        self.stop_strings = [s for s in stop_strings if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        self.pending += text
        hits = [(self.pending.find(s), s) for s in self.stop_strings if s in self.pending]
        if hits:
            cut = min(index for index, _ in hits)
            emit, self.pending = self.pending[:cut], ""
            return emit, True
        hold = self._held_length()
        emit = self.pending[:len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        return emit, False

    def _held_length(self) -> int:
        longest = 0
        for stop in self.stop_strings:
            for size in range(min(len(stop) - 1, len(self.pending)), longest, -1):
                if self.pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text


class _TokenQueueStreamer:
    """A ``generate`` streamer that puts ``(token_id, time)`` on a queue, skipping the prompt."""

    def __init__(self, sink: queue.Queue[Any]):
        self.sink = sink
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        now = time.perf_counter()
        for token in value.reshape(-1).tolist():
            self.sink.put((token, now))

    def end(self) -> None:
        self.sink.put(_END)


def _event_criteria(stop_event: threading.Event) -> Any:
    from transformers import StoppingCriteria

    class EventStoppingCriteria(StoppingCriteria):
        """Stops generation after the current token once ``stop_event`` is set (cancel, stop string)."""

        def __call__(self, input_ids, scores, **kwargs):
            import torch

            return torch.full((input_ids.shape[0],), stop_event.is_set(), dtype=torch.bool,
                              device=input_ids.device)

    return EventStoppingCriteria()


def stream_token_ids(model: Any, input_ids: Any, generation_config: Any,
                     stop_event: threading.Event, poll_seconds: float = 0.05) -> Iterator[tuple[int, float]]:
    """Yield ``(token_id, perf_counter time)`` as the decode loop (own or ``generate``) produces them.

    Setting ``stop_event`` (from any thread) ends generation after the token in flight.
    Leaving the loop early (break, exception, generator closed) sets it too and waits
    for the generation thread, so no thread outlives the answer. An exception raised
    inside ``generate`` is re-raised here.
    """
    from carexpert.chat.decode_request import request_from_generation_config
    from carexpert.chat.graph_decode import decoder_for

    tokens: queue.Queue[Any] = queue.Queue()
    failure: list[BaseException] = []
    decoder = decoder_for(model)
    request = request_from_generation_config(generation_config) if decoder is not None else None

    def run() -> None:
        _generating.set()
        try:
            if decoder is not None and request is not None:
                for item in decoder.stream(input_ids, request, stop_event):
                    tokens.put(item)
                return
            from transformers import StoppingCriteriaList

            model.generate(input_ids=input_ids, attention_mask=input_ids.new_ones(input_ids.shape),
                           generation_config=generation_config, streamer=_TokenQueueStreamer(tokens),
                           stopping_criteria=StoppingCriteriaList([_event_criteria(stop_event)]))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            failure.append(exc)
        finally:
            _generating.clear()
            tokens.put(_END)

    worker = submit_to_decode_thread(run)
    try:
        while True:
            try:
                item = tokens.get(timeout=poll_seconds)
            except queue.Empty:
                continue
            if item is _END:
                break
            yield item
    finally:
        stop_event.set()
        worker.result()
    if failure:
        raise failure[0]
