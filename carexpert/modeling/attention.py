"""Variable-length flash attention for packed training rows, from PyTorch itself.

With padding-free packing a micro-batch is one row of many examples. transformers'
SDPA path turns such a row into a dense block-diagonal mask and attends over every
pair of tokens in the row (16 examples of ~250 tokens: a 4,000 x 4,000 mask, with
the slower memory-efficient kernel). ``torch.nn.attention.varlen.varlen_attn``
(PyTorch >= 2.10, CUDA) runs flash attention per example from the cumulative
lengths the packing collator already computes. Measured on an H100 with a 4-bit
Mistral-7B-shaped model (docs/benchmarks.md): 10,006 tokens/s against 6,443 with the
SDPA mask, same first-step loss.

The function is registered with transformers under ``VARLEN`` for attention and for
masks (no dense mask is built: the boundaries travel as ``cu_seq_lens_q``, or are read
from restarting ``position_ids``); any other batch (padded rows) runs transformers'
SDPA with the equivalent causal + padding mask. A sliding-window layer (Gemma 3's
local layers: 512 tokens) keeps its window on every path: ``window_size`` for the
kernel (or SDPA where this PyTorch's kernel has no window and an example is longer),
a banded mask for SDPA; examples longer than the window are exactly where it matters.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

VARLEN = "carexpert_varlen"


def varlen_available(device: str) -> bool:
    """Whether this PyTorch has CUDA varlen flash attention and ``device`` is a GPU."""
    if not device.startswith("cuda"):
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def varlen_attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                             scaling: float | None = None, dropout: float = 0.0, **kwargs: Any):
    """transformers' attention-interface signature; query/key/value are (batch, heads, tokens, head_dim)."""
    import torch

    boundaries = _packed_boundaries(query, attention_mask, kwargs)
    if boundaries is None or not query.is_cuda or dropout:
        return _sdpa(module, query, key, value, attention_mask, scaling, dropout, kwargs)
    from torch.nn.attention.varlen import varlen_attn

    cu, longest = boundaries
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else query.dtype
    if dtype not in (torch.float16, torch.bfloat16):
        dtype = torch.bfloat16  # flash kernels take 16-bit inputs (fp32 here means upcast norms)
    q, k, v = (t[0].transpose(0, 1).to(dtype) for t in (query, key, value))
    params = varlen_parameters()
    window = kwargs.get("sliding_window")
    if window and "window_size" not in params and longest > window:
        return _sdpa(module, query, key, value, attention_mask, scaling, dropout, kwargs)  # no window in this kernel
    extra: dict[str, Any] = {}
    if "enable_gqa" in params:
        extra["enable_gqa"] = True
    elif k.shape[1] != q.shape[1]:
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if "window_size" in params:
        # a sliding layer sees itself and the window - 1 tokens before it, like transformers' mask
        extra["window_size"] = (window - 1 if window else -1, 0)
    else:
        extra["is_causal"] = True
    out = cast(torch.Tensor, varlen_attn(q, k, v, cu, cu, longest, longest, scale=scaling, **extra))  # no lse asked
    return out.unsqueeze(0).to(query.dtype), None


_VARLEN_PARAMETERS: frozenset[str] | None = None


def varlen_parameters() -> frozenset[str]:
    """The keyword names this PyTorch's ``varlen_attn`` takes (read once, outside any compiled graph)."""
    global _VARLEN_PARAMETERS
    if _VARLEN_PARAMETERS is None:
        from torch.nn.attention.varlen import varlen_attn

        _VARLEN_PARAMETERS = frozenset(inspect.signature(varlen_attn).parameters)
    return _VARLEN_PARAMETERS


def _packed_boundaries(query: Any, attention_mask: Any, kwargs: dict[str, Any]):
    """(int32 cumulative lengths, longest example) of a packed row, or None for any other batch."""
    import torch

    if query.shape[0] != 1 or attention_mask is not None:
        return None
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None:  # the longest example from the collator, else measured (a caller may pass only the boundaries)
        longest = kwargs.get("max_length_q")
        return cu.to(torch.int32), int(longest) if longest is not None else int((cu[1:] - cu[:-1]).max())
    positions = kwargs.get("position_ids")
    if positions is None:
        return None
    starts = (positions[0] == 0).nonzero().flatten()
    if starts.numel() < 2:
        return None
    cu = torch.cat([starts, starts.new_tensor([positions.shape[-1]])]).to(torch.int32)
    return cu, int((cu[1:] - cu[:-1]).max())


def _sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: Any, dropout: float,
          kwargs: dict[str, Any]):
    """transformers' SDPA, given the 4-D mask it expects (the registered mask function may give 2-D or none)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q_len, kv_len = query.shape[2], key.shape[2]
    positions = kwargs.get("position_ids")
    window = kwargs.get("sliding_window")
    if attention_mask is not None and attention_mask.dim() == 2:
        causal = _causal(q_len, kv_len, window, query.device)
        attention_mask = causal[None, None] & attention_mask[:, None, None, -kv_len:].bool()
        attention_mask = attention_mask | torch.eye(q_len, kv_len, dtype=torch.bool, device=query.device)
    elif attention_mask is None and positions is not None and query.shape[0] == 1 and q_len == kv_len > 1:
        segment = (positions[0] == 0).cumsum(0)  # packed row: attend only inside one example
        causal = _causal(q_len, kv_len, window, query.device)
        attention_mask = (causal & (segment[:, None] == segment[None, :]))[None, None]
    return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                  **kwargs)


def _causal(q_len: int, kv_len: int, window: int | None, device: Any):
    """Bool [q_len, kv_len]: causal (queries are the last q_len of kv_len), within ``window`` tokens if given."""
    import torch

    allowed = torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(kv_len - q_len)
    if window:
        allowed = allowed.triu(kv_len - q_len - window + 1)  # a key at most window - 1 tokens back
    return allowed


def register_varlen() -> str:
    """Make ``attn_implementation=VARLEN`` valid in transformers (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    if varlen_available("cuda"):
        varlen_parameters()  # read now, not while a compiled layer is being traced

    AttentionInterface.register(VARLEN, varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN, flash_attention_mask)
    return VARLEN
