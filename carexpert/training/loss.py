"""Causal-LM losses that compute logits only where there is a label.

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

Three ways, one loss (``train.head_loss``):

- ``chunked`` (``chunked_lm_loss``): the model runs with ``logits_to_keep=1`` (one row
  of logits per sequence, unused), a hook takes the decoder's final hidden states,
  those at labelled positions go through ``head_loss.labelled_head_loss``: the output
  layer and cross-entropy a chunk at a time, gradient computed on the way. The model's
  own forward is still what runs (DDP's hooks see it). Only for model classes whose
  forward does nothing after ``lm_head`` but Gemma's final-logit softcapping
  (``supports_chunked_head`` reads the source), else ``selective``;
- ``selective`` (``selective_lm_loss``): boolean ``logits_to_keep``, all labelled rows'
  logits at once;
- ``full``: transformers' own ``labels=`` loss, logits for every token.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

HEAD_LOSSES = ("chunked", "selective", "full")
# Lines a causal LM's forward may run between lm_head and its loss for the chunked head to
# reproduce it exactly: nothing, or Gemma's final-logit softcapping.
_AFTER_HEAD_ALLOWED = re.compile(r"^(|if self\.config\.final_logit_softcapping is not None:|"
                                 r"logits = logits [/*] self\.config\.final_logit_softcapping|"
                                 r"logits = torch\.tanh\(logits\))$")


def prediction_mask(labels):
    """Bool [batch, seq]: True at positions whose next token carries a label."""
    import torch

    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != -100
    return mask


def causal_lm(model: Any) -> Any:
    """The transformers causal LM inside DDP and peft wrappers."""
    base = getattr(model, "module", model)  # DDP
    if hasattr(base, "get_base_model"):  # peft
        base = base.get_base_model()
    return base


def _forward_source(model: Any) -> str:
    try:
        return inspect.getsource(type(causal_lm(model)).forward)
    except (OSError, TypeError):
        return ""


def supports_selective_logits(model: Any) -> bool:
    """Whether the causal-LM class slices hidden states with ``slice_logits_to_keep`` (bool masks work)."""
    return "slice_logits_to_keep" in _forward_source(model)


def supports_chunked_head(model: Any) -> bool:
    """Whether ``chunked_lm_loss`` computes exactly this model's loss.

    The forward must call its decoder and ``lm_head`` and do nothing to the logits
    afterwards but final-logit softcapping; the output layer must be a frozen linear
    layer without bias.
    """
    source = _forward_source(model)
    if "slice_logits_to_keep" not in source or "self.lm_head(" not in source:
        return False
    lines = [line.strip() for line in source.split("self.lm_head(", 1)[1].splitlines()[1:]]
    for line in lines:
        if "loss" in line:
            break
        if not _AFTER_HEAD_ALLOWED.match(line):
            return False
    base = causal_lm(model)
    try:
        head, decoder = base.get_output_embeddings(), base.get_decoder()
    except (AttributeError, ValueError, NotImplementedError):
        return False
    weight = getattr(head, "weight", None)
    return (decoder is not None and weight is not None and weight.dim() == 2 and not weight.requires_grad
            and getattr(head, "bias", None) is None)


def resolve_head_loss(requested: str, model: Any) -> tuple[str, str | None]:
    """The head loss this model can run and a notice when it is not the one asked for."""
    if requested == "chunked" and not supports_chunked_head(model):
        requested, why = "selective", "this model class does more to its logits than carexpert's chunked loss knows"
        if supports_selective_logits(model):
            return requested, f"head_loss chunked asked, using selective: {why}"
        return "full", f"head_loss chunked asked, using full: {why}, and it cannot slice its logits"
    if requested == "selective" and not supports_selective_logits(model):
        return "full", "this model class cannot slice its logits: the loss computes them for every token"
    return requested, None


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


def chunked_lm_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None,
                    chunk_rows: int | None = None):
    """(loss, outputs): ``selective_lm_loss``'s loss without ever holding all labelled logits."""
    from carexpert.training.head_loss import default_chunk_rows, labelled_head_loss

    base = causal_lm(model)
    head = base.get_output_embeddings()
    captured: list[Any] = []

    def keep_hidden(_module, _args, output):
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    labels = inputs["labels"]
    keep = prediction_mask(labels)
    targets = labels[:, 1:][keep[:, :-1]]
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    handle = base.get_decoder().register_forward_hook(keep_hidden)
    try:
        outputs = model(**model_inputs, logits_to_keep=1, use_cache=False)
    finally:
        handle.remove()
    hidden = captured[-1][keep]
    softcap = getattr(base.config, "final_logit_softcapping", None)
    rows = chunk_rows or default_chunk_rows(head.weight.shape[0])
    total = labelled_head_loss(hidden, head.weight, targets, chunk_rows=rows, softcap=softcap)
    count = num_items_in_batch if num_items_in_batch is not None else max(int(targets.numel()), 1)
    if hasattr(count, "to"):
        count = count.to(total.device)
    return total / count, outputs
