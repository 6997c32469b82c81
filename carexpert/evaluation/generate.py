"""Batched answer generation for evaluation: left padding, greedy, stop at EOS or a new turn.

Every question is rendered with the shared prompt function (``carexpert.dataset.tokenization
.prompt_for``, over ``carexpert.prompt``), retrieved passages included, so the model sees exactly
what it was trained on. Rows of a batch finish independently: a stopping criterion marks a row
done when it emits EOS or starts a new "### ..." turn, and generate ends the batch as soon as
every row is done (or at the token limit). Each answer records why it ended ("eos",
"stop_string" or "length"), which the clean-stop metric reads.

Speed: prompts are sorted by length (longest first) before batching, so a batch holds prompts
of similar length and little padding, and answers are put back in the callers' order. A
batch size of 0 means "as large as fits": 256 rows on a GPU (far more than a 270M model
needs to keep one busy), 16 on a CPU; a batch that runs out of GPU memory is split in half
and retried, and the smaller size is kept for the rest.

A prompt longer than the model's context (less the answer budget) is cut from the left,
keeping the question's end and the response header, as chat keeps a conversation inside
the context: an over-long question costs a truncated prompt, never unbounded memory.

Cancellation is cooperative: a set ``threading.Event`` ends the current batch at the next
token and raises ``EvaluationCancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from carexpert.prompt import stop_strings

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)
AUTO_BATCH_GPU = 512  # the builtin held-out set (360) in one batch: a looping base side makes one pass, not two
AUTO_BATCH_CPU = 16


class EvaluationCancelled(Exception):
    """The caller set the cancel event; partial work is discarded."""


@dataclass(frozen=True)
class Generation:
    """One generated answer and how it ended."""

    text: str
    n_tokens: int
    stop_reason: str  # "eos" | "stop_string" | "length"


def build_prompts(questions: Sequence[tuple[str, str]], system: str | None,
                  contexts: Sequence[Sequence[str]] | None = None) -> list[str]:
    """Prompts for (instruction, input) pairs with the shared prompt function; ``contexts`` holds
    each question's retrieved passage texts (None: closed-book)."""
    from carexpert.dataset.tokenization import prompt_for

    return [prompt_for({"instruction": instruction, "input": input_text, "system": system,
                        "context": list(contexts[i]) if contexts is not None else []})
            for i, (instruction, input_text) in enumerate(questions)]


def resolve_batch_size(batch_size: int, device: Any) -> int:
    """``eval.batch_size``, with 0 (auto) made concrete for ``device``."""
    if batch_size > 0:
        return batch_size
    return AUTO_BATCH_GPU if getattr(device, "type", str(device)) == "cuda" else AUTO_BATCH_CPU


def padded_tokens(lengths: Sequence[int], order: Sequence[int], batch_size: int) -> int:
    """Prompt tokens a batched run processes, padding included, when batching ``order``."""
    return sum(len(batch) * max(lengths[i] for i in batch)
               for batch in (order[start:start + batch_size] for start in range(0, len(order), batch_size)))


def length_order(tokenizer: Any, prompts: Sequence[str]) -> list[int]:
    """Prompt indices, longest prompt first (ties keep their order), for batches with little padding."""
    if not prompts:
        return []
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    return sorted(range(len(prompts)), key=lambda i: -lengths[i])


FALLBACK_CONTEXT = 2048


def prompt_token_limit(model: Any, tokenizer: Any, max_new_tokens: int) -> int:
    """How many prompt tokens fit beside ``max_new_tokens`` in the model's context window."""
    config = getattr(model, "config", None)
    get_text_config = getattr(config, "get_text_config", None)
    text_config = get_text_config() if callable(get_text_config) else config
    context = getattr(text_config, "max_position_embeddings", None)
    if not isinstance(context, int) or context <= 0:
        context = getattr(tokenizer, "model_max_length", None)
        context = context if isinstance(context, int) and 0 < context < 1_000_000 else FALLBACK_CONTEXT
    return max(16, context - max_new_tokens)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _make_stopper(tokenizer: Any, prompt_length: int, eos_ids: set[int], stops: Sequence[str],
                  cancel: threading.Event | None, may_end: dict[int, bool] | None = None):
    """A transformers StoppingCriteria marking rows done at EOS or a stop string (or all on cancel).

    A stop string can only newly appear in a row's text when the row's newest token writes its last
    character (":" for the "### ...:" turns): every earlier character was already in the text
    checked the step before, and a row is done as soon as its text holds one. So a row's tail is
    decoded only on steps whose newest token could end a stop string (``may_end``, a cache per token
    id, shared across batches): the rows stop exactly where decoding every row at every step would
    stop them, with a tokenizer call on a few steps instead of every unfinished row at every step
    (256 rows a step on a GPU). A token whose text alone is not whole characters ("\ufffd": part of
    a multi-byte character) counts as one that could end a stop string.
    """
    import torch
    from transformers import StoppingCriteria

    tail_tokens = max(8, max((len(s) for s in stops), default=0) + 4)
    eos = torch.tensor(sorted(eos_ids)) if eos_ids else None
    last_chars = {stop[-1] for stop in stops if stop}
    cache = may_end if may_end is not None else {}

    def could_end(token_id: int) -> bool:
        known = cache.get(token_id)
        if known is None:
            text = tokenizer.decode([token_id], skip_special_tokens=True)
            known = cache[token_id] = "\ufffd" in text or any(c in text for c in last_chars)
        return known

    class _Stop(StoppingCriteria):
        finished = None  # rows already done: never decoded again

        def __call__(self, input_ids, scores, **kwargs):
            new = input_ids[:, prompt_length:]
            if self.finished is None:
                self.finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            done = self.finished.clone()
            if cancel is not None and cancel.is_set():
                return torch.ones_like(done)
            if eos is not None and new.shape[1]:
                done |= torch.isin(new[:, -1:], eos.to(new.device)).any(dim=1)
            if last_chars and new.shape[1]:
                newest = new[:, -1].tolist()
                for row in (~done).nonzero().flatten().tolist():
                    if could_end(newest[row]):
                        tail = tokenizer.decode(new[row, -tail_tokens:], skip_special_tokens=True)
                        done[row] = any(stop in tail for stop in stops)
            self.finished = done
            return done

    return _Stop()


def _finish(tokenizer: Any, token_ids: list[int], eos_ids: set[int], stops: Sequence[str],
            max_new_tokens: int) -> Generation:
    """Cut one row at EOS or the first stop string and say why it ended."""
    cut = next((i for i, token in enumerate(token_ids) if token in eos_ids), None)
    if cut is not None:
        text = tokenizer.decode(token_ids[:cut], skip_special_tokens=True)
        return Generation(text.strip(), cut + 1, "eos")
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    positions = [text.find(stop) for stop in stops if stop in text]
    if positions:
        kept = text[: min(positions)]
        n_tokens = len(tokenizer(kept, add_special_tokens=False)["input_ids"])
        return Generation(kept.strip(), n_tokens, "stop_string")
    # Without EOS or a stop string a row only ends at the token limit.
    return Generation(text.strip(), len(token_ids), "length" if len(token_ids) >= max_new_tokens else "stop_string")


def generate_answers(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int,
                     batch_size: int, progress: ProgressCallback | None = None, phase: str = "generate",
                     cancel: threading.Event | None = None, greedy: bool = True,
                     temperature: float = 1.0, sort_by_length: bool = True) -> list[Generation]:
    """Answer every prompt, ``batch_size`` at a time (0: auto), left padded, longest prompts first;
    greedy unless told otherwise. Answers come back in the order of ``prompts`` (``sort_by_length=False``
    batches them in that order instead: for measuring what sorting saves)."""
    from transformers import GenerationConfig

    stops = stop_strings()
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
    generation_config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=not greedy, temperature=None if greedy else temperature,
        top_p=None, top_k=None, pad_token_id=pad_id, eos_token_id=sorted(eos_ids) or None)
    device = next(model.parameters()).device
    size = resolve_batch_size(batch_size, device)
    order = length_order(tokenizer, prompts) if sort_by_length else list(range(len(prompts)))
    limit = prompt_token_limit(model, tokenizer, max_new_tokens)
    old_side, old_truncation = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = tokenizer.truncation_side = "left"  # keep the question's end and the response header
    answers: dict[int, Generation] = {}
    may_end: dict[int, bool] = {}  # token id -> could end a stop string (the stopper's cache, for all batches)
    try:
        if progress:
            progress(phase, 0, len(prompts))
        start = 0
        while start < len(order):
            if cancel is not None and cancel.is_set():
                raise EvaluationCancelled()
            indices = order[start:start + size]
            try:
                generated = _generate_batch(model, tokenizer, [prompts[i] for i in indices], generation_config,
                                            eos_ids, stops, cancel, device, limit, may_end)
            except Exception as exc:  # out of GPU memory: halve the batch and try again
                if not _is_out_of_memory(exc) or size == 1:
                    raise
                size = max(1, len(indices) // 2)
                _free_cuda_memory()
                continue
            if cancel is not None and cancel.is_set():
                raise EvaluationCancelled()
            for index, row in zip(indices, generated):
                answers[index] = _finish(tokenizer, _strip_padding(row, pad_id, eos_ids), eos_ids, stops,
                                         max_new_tokens)
            start += len(indices)
            if progress:
                progress(phase, len(answers), len(prompts))
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = old_side, old_truncation
    return [answers[i] for i in range(len(prompts))]


def _generate_batch(model: Any, tokenizer: Any, batch: list[str], generation_config: Any, eos_ids: set[int],
                    stops: Sequence[str], cancel: threading.Event | None, device: Any,
                    max_prompt_tokens: int, may_end: dict[int, bool] | None = None) -> list[list[int]]:
    """New token ids of each row of one left-padded batch (generate stops when every row is done);
    a prompt over ``max_prompt_tokens`` loses its beginning."""
    import torch
    from transformers import StoppingCriteriaList

    encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=True, truncation=True,
                        max_length=max_prompt_tokens)
    encoded = {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
    prompt_length = encoded["input_ids"].shape[1]
    stopper = _make_stopper(tokenizer, prompt_length, eos_ids, stops, cancel, may_end)
    with torch.inference_mode():
        output = model.generate(**encoded, generation_config=generation_config,
                                stopping_criteria=StoppingCriteriaList([stopper]))
    return output[:, prompt_length:].tolist()


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _strip_padding(row: list[int], pad_id: int, eos_ids: set[int]) -> list[int]:
    """Drop the padding generate appends to rows that finished early (pad may equal EOS)."""
    end = len(row)
    while end > 0 and row[end - 1] == pad_id and pad_id not in eos_ids:
        end -= 1
    return row[:end]
