"""What the own decode loop's eager CPU step is made of: the lean Gemma 3 layers and the screened
output head, each where the model and this CPU allow it, and why not where they do not.

Kept apart from ``graph_decode`` (the loop itself): choosing these parts, and the head-and-choice
they run, are the CPU's concern only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from carexpert.chat.decode_step import SamplingParams, adjusted_logits, choose_from_adjusted


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def set_up(base: Any, max_len: int) -> tuple[Any, Any, str]:
    """(lean layers or None, screened head or None, what is not used and why) for ``base``."""
    from carexpert.chat import lean_gemma3, screened_head

    lean = screen = None
    notes = []
    reason = lean_gemma3.unsupported_reason(base)
    if reason is None:
        try:
            lean = lean_gemma3.LeanGemma3Step(base, max_len)
        except Exception as error:  # noqa: BLE001 - any failure: the transformers layers decode instead
            reason = f"setting up the lean step failed: {type(error).__name__}: {first_line(error)}"
    if reason is not None:
        notes.append(f"transformers layers ({reason})")
    reason = screened_head.unsupported_reason(base)
    if reason is None and not callable(getattr(base, "get_decoder", None)):
        reason = "no get_decoder() for the hidden state"
    if reason is None:
        try:
            screen = screened_head.ScreenedHead(base.get_output_embeddings().weight)
        except screened_head.ScreenUnavailable as error:
            reason = str(error)
        except Exception as error:  # noqa: BLE001 - any failure: the fp32 head decodes instead
            reason = f"setting up the screen failed: {type(error).__name__}: {first_line(error)}"
    if reason is not None:
        notes.append(f"full fp32 head ({reason})")
    return lean, screen, "; ".join(notes)


def describe(lean: Any, screen: Any, note: str) -> str:
    """What an eager CPU step runs, and what it falls back to and why (the plan shows it)."""
    parts = [name for name, on in (("lean Gemma 3 layers", lean is not None),
                                   ("screened int8/fp32 head", screen is not None)) if on]
    return "; ".join(part for part in (", ".join(parts), note) if part)


def choose_from_hidden(hidden: torch.Tensor, head: torch.Tensor, screen: Any, params: SamplingParams,
                       seen: torch.Tensor, banned: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
    """The next token (1, 1) from a final hidden state (1, hidden): through ``screen``'s candidates when
    given (the penalty, suppressed tokens and the choice then apply to them only), else the full ``head``."""
    if screen is not None:
        keep = 1 if params.greedy else params.top_k
        rows, logits = screen.candidates(hidden, seen, banned, knobs[0], keep)
        scores = adjusted_logits(logits, seen[:, rows], banned[:, rows], knobs)
        return rows[choose_from_adjusted(scores, knobs, params)]
    return choose_from_adjusted(adjusted_logits(F.linear(hidden, head), seen, banned, knobs), knobs, params)
