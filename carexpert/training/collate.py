"""Turn tokenized examples into micro-batches.

Two shapes:

- **packed** (``train.padding_free``): the whole micro-batch is one row with no
  padding; ``position_ids`` restart at 0 for every example and the first label of
  each is -100, so nothing is predicted across a boundary. transformers builds a
  block-diagonal causal mask from such position ids when no ``attention_mask`` is
  passed (sdpa/eager, sliding windows included), and flash-attention takes the
  boundaries as ``cu_seq_lens`` (varlen). This is transformers'
  ``DataCollatorWithFlattening``; the test suite checks the packed loss equals the
  padded one on a real model.
- **padded**: right padding to the longest example, labels padded with -100.

``real_token_count`` counts the tokens that are not padding, for tokens/s.
"""

from __future__ import annotations

from typing import Any


def make_collator(tokenizer: Any, *, packed: bool, flash_attention: bool = False,
                  constant_max_length: int | None = None):
    """The collator for a run (imports transformers lazily).

    ``constant_max_length`` replaces the packed batch's longest-example length (the
    flash kernel's ``max_length_q/k``, used only to size its grid) by a constant, so a
    compiled layer sees the same Python int every step instead of recompiling for each.
    """
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packed:
        collator = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100,
                                              return_flash_attn_kwargs=flash_attention)
        return ConstantMaxLength(collator, constant_max_length) if flash_attention and constant_max_length else collator
    return DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100, return_tensors="pt")


class ConstantMaxLength:
    """A packing collator whose flash-attention ``max_length_q/k`` is at least a fixed bound."""

    def __init__(self, collator: Any, bound: int):
        self.collator, self.bound = collator, int(bound)

    def __call__(self, features: list[dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        batch = self.collator(features, *args, **kwargs)
        for key in ("max_length_q", "max_length_k"):
            if key in batch:
                batch[key] = max(self.bound, int(batch[key]))
        return batch


def real_token_count(batch: dict[str, Any]):
    """Non-padding tokens in a collated batch (a tensor, so counting never waits for the GPU)."""
    if "attention_mask" in batch:
        return batch["attention_mask"].sum()
    ids = batch["input_ids"]
    return ids.new_tensor(ids.numel())


def sequence_count(batch: dict[str, Any]):
    """Examples in a collated batch: rows when padded, restarts of ``position_ids`` when packed."""
    if "attention_mask" not in batch and "position_ids" in batch:
        return (batch["position_ids"] == 0).sum()
    ids = batch["input_ids"]
    return ids.new_tensor(ids.shape[0])
