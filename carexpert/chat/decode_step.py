"""The pieces of one decoding step with fixed shapes: KV cache, attention masks, token choice.

``graph_decode`` runs these in a loop and, on a GPU, records one step as a CUDA graph.
Everything here keeps every tensor's shape and address fixed from one token to the next
and never reads a tensor's value on the host, which is what a recorded graph needs:

- ``FixedCache`` holds keys and values for every layer at full length (the static
  cache size) and writes a step's keys at ``position`` (a device tensor). Sliding-window
  layers keep full length too and get a sliding mask, so nothing rolls or changes shape
  when an answer crosses the window (transformers' sliding static cache rolls its
  buffers on a host-side counter: a different code path, and a recompile, past the
  window). Attending over the whole static cache costs little at batch 1: the KV cache
  is a few percent of the weights read per token.
- ``attention_masks`` builds each layer kind's mask from ``position`` on the device;
  the model gets them ready-made (a 4-D mask, or Gemma 3's per-kind dict), so
  transformers' own mask code, which reads cache lengths on the host, never runs.
- ``choose_next`` applies the repetition penalty, temperature, top-k and top-p, then
  samples (``probs / Exp(1)`` noise, the exponential-race form of sampling, with no
  host sync) or takes the argmax: the same order and definitions as transformers'
  logits processors, so greedy answers equal ``generate``'s token for token.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

FULL, SLIDING = "full_attention", "sliding_attention"


@dataclass(frozen=True)
class SamplingParams:
    """How one answer picks its tokens (``top_k`` 0 = no limit, ``top_p`` 1.0 = no nucleus)."""

    greedy: bool
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0

    @property
    def graph_key(self) -> tuple:
        """Settings that change the recorded step's shapes; the rest live in device tensors."""
        return ("greedy",) if self.greedy else ("sample", self.top_k)


def layer_kinds(config: Any, max_len: int) -> tuple[list[str], int | None]:
    """Each layer's attention kind (full or sliding) and the sliding window, from the model config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    count = text.num_hidden_layers
    window = getattr(text, "sliding_window", None)
    types = getattr(text, "layer_types", None)
    if types:
        kinds = [SLIDING if kind == SLIDING else FULL for kind in types[:count]]
    else:
        kinds = [SLIDING if window else FULL] * count
    if not window or window >= max_len:  # a window longer than the cache never slides
        kinds, window = [FULL] * count, None
    return kinds, window


class FixedCache:
    """Keys and values for every layer, at full length, written at ``position`` (duck-typed transformers Cache).

    ``update`` is all the model calls (transformers 5.x: ``cache.update(keys, values, layer_idx, ...)``).
    ``visible`` (a host int, eager decoding only) returns just the first ``visible`` positions,
    so a CPU step attends over what was written rather than the whole buffer.
    """

    is_compileable = True

    def __init__(self, layers: int, max_len: int, device: torch.device):
        self.max_len = max_len
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.offsets = torch.arange(max_len, dtype=torch.long, device=device)
        self.visible: int | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if keys is None or values is None:  # first write (a prefill): sized from the model's own key/value shapes
            shape = (*key_states.shape[:2], self.max_len)
            keys = self.keys[layer_idx] = key_states.new_zeros(*shape, key_states.shape[-1])
            values = self.values[layer_idx] = value_states.new_zeros(*shape, value_states.shape[-1])
        index = self.position + self.offsets[:key_states.shape[-2]]
        keys.index_copy_(2, index, key_states)
        values.index_copy_(2, index, value_states)
        if self.visible is not None:
            return keys[:, :, :self.visible], values[:, :, :self.visible]
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> torch.Tensor:
        return self.position

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return self.max_len

    def __len__(self) -> int:
        return len(self.keys)


def attention_masks(position: torch.Tensor, query_length: int, kv_index: torch.Tensor, window: int | None,
                    kinds: set[str], attn_implementation: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The 4-D mask (1, 1, query_length, len(kv_index)) of each layer kind present, for queries at ``position``.

    Boolean (True = attend) for sdpa, additive (0 or the dtype's minimum) for eager attention.
    """
    queries = position + torch.arange(query_length, device=position.device)
    allowed = kv_index[None, :] <= queries[:, None]
    masks = {}
    for kind in kinds:
        if kind == SLIDING and window is None:
            raise ValueError("a sliding-window layer needs the model's sliding_window size")
        mask = allowed & (kv_index[None, :] > queries[:, None] - window) if kind == SLIDING and window is not None else allowed
        mask = mask[None, None]
        if attn_implementation != "sdpa":
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        masks[kind] = mask
    return masks


def mask_argument(masks: dict[str, torch.Tensor], takes_mask_dict: bool) -> Any:
    """What the model's ``attention_mask`` gets: Gemma 3-style models take a dict per kind, others one 4-D mask."""
    if takes_mask_dict:
        return masks
    (mask,) = masks.values()
    return mask


def cache_keyword(model: Any) -> str:
    """transformers 5.24 calls the cache argument ``cache`` (``past_key_values`` deprecated); 5.17 ``past_key_values``."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def penalize(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """transformers' repetition penalty over every token seen so far (prompt and answer): x/p if x>0, x*p if not."""
    return torch.where(seen, penalized(logits, penalty), logits)


def penalized(logits: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """``logits`` as if every one had been seen; monotone in each logit for any penalty > 0."""
    return torch.where(logits < 0, logits * penalty, logits / penalty)


def choose_next(logits: torch.Tensor, seen: torch.Tensor, banned: torch.Tensor, knobs: torch.Tensor,
                params: SamplingParams, generator: torch.Generator | None = None) -> torch.Tensor:
    """The next token id, shape (1, 1), from float32 ``logits`` (1, vocab); no host sync.

    ``seen`` marks the tokens the repetition penalty applies to, ``banned`` the ones never
    chosen (``suppress_tokens``). ``knobs`` is a device tensor [repetition_penalty,
    temperature, top_p] so one recorded step serves every value of them; ``params``
    supplies only greedy vs sampling and top-k.
    """
    logits = adjusted_logits(logits, seen, banned, knobs)
    return choose_from_adjusted(logits, knobs, params, generator)


def adjusted_logits(logits: torch.Tensor, seen: torch.Tensor, banned: torch.Tensor, knobs: torch.Tensor) -> torch.Tensor:
    """Float32 logits after the repetition penalty and ``suppress_tokens`` (the part that fuses into the forward)."""
    return penalize(logits.float(), seen, knobs[0]).masked_fill(banned, float("-inf"))


def choose_from_adjusted(logits: torch.Tensor, knobs: torch.Tensor, params: SamplingParams,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Greedy or sampled choice from ``adjusted_logits``' output (see ``choose_next``)."""
    if params.greedy:
        return logits.argmax(-1, keepdim=True)
    logits = logits / knobs[1]
    count = params.top_k if 0 < params.top_k < logits.shape[-1] else logits.shape[-1]
    values, indices = torch.topk(logits, count, dim=-1)  # sorted, largest first
    probs = values.softmax(-1)
    before = probs.cumsum(-1) - probs  # probability of the tokens ranked above each one
    probs = probs * (before < knobs[2])  # the nucleus: always keeps the top token
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return indices.gather(-1, (probs / noise).argmax(-1, keepdim=True))


def knob_values(params: SamplingParams) -> list[float]:
    """The values ``choose_next`` reads from its ``knobs`` tensor."""
    top_p = params.top_p if params.top_p < 1.0 else 2.0  # >= 1: keep everything despite rounding in the sum
    return [params.repetition_penalty, params.temperature or 1.0, top_p]
