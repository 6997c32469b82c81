"""Batched answer generation for evaluation: left padding, greedy, stop at EOS or a new turn.

Every question is rendered with the shared prompt template (``carexpert.prompt``), so the
model sees exactly what it was trained on. Rows of a batch finish independently: a
stopping criterion marks a row done when it emits EOS or starts a new "### ..." turn,
and the batch ends when every row is done or the token limit is reached. Each answer
records why it ended ("eos", "stop_string" or "length"), which the clean-stop metric reads.

Cancellation is cooperative: a set ``threading.Event`` ends the current batch at the next
token and raises ``EvaluationCancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from carexpert.prompt import render_prompt, stop_strings

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)


class EvaluationCancelled(Exception):
    """The caller set the cancel event; partial work is discarded."""


@dataclass(frozen=True)
class Generation:
    """One generated answer and how it ended."""

    text: str
    n_tokens: int
    stop_reason: str  # "eos" | "stop_string" | "length"


def build_prompts(questions: Sequence[tuple[str, str]], system: str | None) -> list[str]:
    """Prompts for (instruction, input) pairs with the shared template."""
    return [render_prompt(instruction, input_text, system=system) for instruction, input_text in questions]


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
                  cancel: threading.Event | None):
    """A transformers StoppingCriteria marking rows done at EOS or a stop string (or all on cancel)."""
    import torch
    from transformers import StoppingCriteria

    tail_tokens = max(8, max((len(s) for s in stops), default=0) + 4)
    eos = torch.tensor(sorted(eos_ids)) if eos_ids else None

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            new = input_ids[:, prompt_length:]
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if cancel is not None and cancel.is_set():
                return torch.ones_like(done)
            if eos is not None and new.shape[1]:
                done |= torch.isin(new, eos.to(new.device)).any(dim=1)
            for row in range(new.shape[0]):
                if not done[row]:
                    tail = tokenizer.decode(new[row, -tail_tokens:], skip_special_tokens=True)
                    done[row] = any(stop in tail for stop in stops)
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
                     temperature: float = 1.0) -> list[Generation]:
    """Answer every prompt, ``batch_size`` at a time, left padded; greedy unless told otherwise."""
    import torch
    from transformers import GenerationConfig, StoppingCriteriaList

    stops = stop_strings()
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
    generation_config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=not greedy, temperature=None if greedy else temperature,
        top_p=None, top_k=None, pad_token_id=pad_id, eos_token_id=sorted(eos_ids) or None)
    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[Generation] = []
    try:
        if progress:
            progress(phase, 0, len(prompts))
        for start in range(0, len(prompts), batch_size):
            if cancel is not None and cancel.is_set():
                raise EvaluationCancelled()
            batch = list(prompts[start:start + batch_size])
            encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=True)
            encoded = {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
            prompt_length = encoded["input_ids"].shape[1]
            stopper = _make_stopper(tokenizer, prompt_length, eos_ids, stops, cancel)
            with torch.inference_mode():
                output = model.generate(**encoded, generation_config=generation_config,
                                        stopping_criteria=StoppingCriteriaList([stopper]))
            if cancel is not None and cancel.is_set():
                raise EvaluationCancelled()
            for row in output[:, prompt_length:].tolist():
                answers.append(_finish(tokenizer, _strip_padding(row, pad_id, eos_ids), eos_ids, stops,
                                       max_new_tokens))
            if progress:
                progress(phase, len(answers), len(prompts))
    finally:
        tokenizer.padding_side = old_side
    return answers


def _strip_padding(row: list[int], pad_id: int, eos_ids: set[int]) -> list[int]:
    """Drop the padding generate appends to rows that finished early (pad may equal EOS)."""
    end = len(row)
    while end > 0 and row[end - 1] == pad_id and pad_id not in eos_ids:
        end -= 1
    return row[:end]
