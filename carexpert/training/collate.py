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


def make_collator(tokenizer: Any, *, packed: bool, flash_attention: bool = False):
    """The collator for a run (imports transformers lazily)."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packed:
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100,
                                          return_flash_attn_kwargs=flash_attention)
    return DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100, return_tensors="pt")


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
