"""Validation loss and perplexity on answer tokens, exactly as training measures them.

Examples are tokenized by the dataset's own ``tokenize_example`` (loss only on the
answer and its EOS), batched with right padding, and the loss is averaged over every
answer token of the split (token-weighted, not a mean of per-batch means), so base and
tuned numbers are directly comparable with the trainer's eval loss.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from carexpert.evaluation.generate import EvaluationCancelled, ProgressCallback

TokenizeFn = Callable[[Any, Mapping[str, Any], int], "Mapping[str, Sequence[int]] | None"]


def answer_loss(model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], *, tokenize: TokenizeFn,
                max_length: int, batch_size: int, progress: ProgressCallback | None = None,
                phase: str = "val_loss", cancel: threading.Event | None = None) -> float | None:
    """Mean cross-entropy per answer token over ``records``; None when there is nothing to score."""
    import torch

    tokenized = [tokenize(tokenizer, record, max_length) for record in records]  # None: too long, dropped
    examples = [e for e in tokenized if e is not None and any(label != -100 for label in e["labels"][1:])]
    if not examples:
        return None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    total_loss = 0.0
    total_tokens = 0
    if progress:
        progress(phase, 0, len(examples))
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            if cancel is not None and cancel.is_set():
                raise EvaluationCancelled()
            batch = examples[start:start + batch_size]
            width = max(len(e["input_ids"]) for e in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, example in enumerate(batch):
                size = len(example["input_ids"])
                ids[row, :size] = torch.tensor(list(example["input_ids"]))
                mask[row, :size] = 1
                labels[row, :size] = torch.tensor(list(example["labels"]))
            keep = _predicting_positions(labels)
            logits = _logits_at(model, ids.to(device), mask.to(device), keep.to(device)).float()
            targets = labels[:, keep + 1].reshape(-1).to(logits.device)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets,
                                                     ignore_index=-100, reduction="sum")
            total_loss += float(loss)
            total_tokens += int((targets != -100).sum())
            if progress:
                progress(phase, min(start + batch_size, len(examples)), len(examples))
    return total_loss / total_tokens if total_tokens else None


def _predicting_positions(labels: Any) -> Any:
    """Positions whose next token is an answer token (from the earliest answer start in the batch):
    the prompt's logits are never needed, and with a large vocabulary they are most of the work."""
    import torch

    has_label = labels[:, 1:] != -100
    first = int(has_label.float().argmax(dim=1)[has_label.any(dim=1)].min())
    return torch.arange(first, labels.shape[1] - 1)


def _logits_at(model: Any, ids: Any, mask: Any, positions: Any) -> Any:
    """Logits at ``positions`` only (``logits_to_keep``), or all then sliced for models without it."""
    try:
        return model(input_ids=ids, attention_mask=mask, logits_to_keep=positions).logits
    except TypeError:
        return model(input_ids=ids, attention_mask=mask).logits[:, positions]


def perplexity(loss: float | None) -> float | None:
    """exp(loss), None when the loss is unknown or the exponent overflows."""
    if loss is None or not math.isfinite(loss):
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return None
