"""Causal-LM loss that computes logits only where there is a label.

The output layer is the costliest matrix multiply of a small model with a big
vocabulary (the embedded Gemma 3 270M has 262,144 tokens: its lm_head has 168M
weights against ~100M in all 18 decoder layers' linear layers), and the [tokens x vocab] logits with their
fp32 copy and gradient are the biggest activation. Prompt tokens carry no label, so
their logits are thrown away by the standard loss. Here the decoder runs as usual,
then the hidden states are gathered at the positions whose *next* token has a label
and only those go through lm_head (transformers' boolean ``logits_to_keep``, which
also applies the model's ``final_logit_softcapping``). The result is the same
cross-entropy as ``labels=`` gives: a sum over label tokens divided by their count
(``num_items_in_batch`` over the whole accumulated batch when the Trainer gives it).
"""

from __future__ import annotations

import inspect
from typing import Any


def prediction_mask(labels):
    """Bool [batch, seq]: True at positions whose next token carries a label."""
    import torch

    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != -100
    return mask


def supports_selective_logits(model: Any) -> bool:
    """Whether the causal-LM class slices hidden states with ``slice_logits_to_keep`` (bool masks work)."""
    base = model
    for attr in ("get_base_model",):  # peft wrapper → the transformers model
        if hasattr(base, attr):
            base = getattr(base, attr)()
    try:
        source = inspect.getsource(type(base).forward)
    except (OSError, TypeError):
        return False
    return "slice_logits_to_keep" in source


def selective_lm_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None):
    """(loss, outputs) with logits computed only at labelled positions."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = prediction_mask(labels)
    targets = labels[:, 1:][keep[:, :-1]]
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    outputs = model(**model_inputs, logits_to_keep=keep, use_cache=False)
    total = F.cross_entropy(outputs.logits.float(), targets, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else max(int(targets.numel()), 1)
    if hasattr(count, "to"):
        count = count.to(total.device)
    return total / count, outputs
