"""One decoding step of a Gemma 3 text model at batch 1 on the CPU, in about 30 operators a layer.

Why: on 2 CPU cores the embedded Gemma 3 270M spends about as long in the eager
transformers forward's per-operator overhead (about 1,400 operators a token: module
calls, mask building, rotary tables, cache bookkeeping) as in its matrix multiplies
(docs/benchmarks.md). This step computes the same layers with fewer, larger operators:

- q, k and v in one matrix multiply, gate and up in another (their weights
  concatenated once; the model's own q/k/v and gate/up weights become views of the
  concatenated ones, so no memory is added);
- the rotary cos/sin for every cache position computed once, and the q and k heads
  normalised and rotated together;
- no masks: one query attends over a slice of the cache (the last ``sliding_window``
  positions on a sliding layer);
- keys and values written straight into ``FixedCache``'s buffers, which the model's
  own forward filled during the prefill.

It returns the final normed hidden state; the output head is the caller's (see
``screened_head``). The arithmetic is the transformers forward's (same operations in
the same precision), except that a concatenated matrix multiply and an attention over
a slice may sum in another order, so logits can differ in the last bits; greedy
tokens are checked against ``generate`` (tests/test_lean_cpu_step.py,
benchmarks/decode_cpu.py). ``unsupported_reason`` names what this step does not do
(another architecture, an adapter's unmerged layers, soft-capping, ...): the decoder
then keeps the transformers forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from carexpert.chat.decode_step import SLIDING, FixedCache

ROPE_TYPES = ("default", "linear")  # position-independent scaling: tables computed once are exact


def _text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def unsupported_reason(model: Any) -> str | None:
    """Why this step cannot run ``model`` (None when it can). ``model`` is the base model (no PEFT wrapper)."""
    if type(model).__name__ != "Gemma3ForCausalLM":
        return f"{type(model).__name__} is not Gemma3ForCausalLM"
    text = _text_config(model)
    if text.attn_logit_softcapping or text.final_logit_softcapping:
        return "soft-capping"
    if getattr(text, "use_bidirectional_attention", False):
        return "bidirectional attention"
    if text.hidden_activation != "gelu_pytorch_tanh":
        return f"activation {text.hidden_activation!r}"
    parameters = getattr(text, "rope_parameters", None) or {}
    for kind in set(text.layer_types):
        rope = parameters.get(kind, parameters) if isinstance(parameters, dict) else {}
        if rope.get("rope_type", "default") not in ROPE_TYPES:
            return f"rope type {rope.get('rope_type')!r}"
    for layer in model.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        for linear in (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj,
                       mlp.gate_proj, mlp.up_proj, mlp.down_proj):
            if type(linear) is not torch.nn.Linear or linear.bias is not None:
                return f"{type(linear).__name__} layers (an adapter not merged, or biases)"
            if linear.weight.dtype != torch.float32 or linear.weight.device.type != "cpu":
                return f"{linear.weight.dtype} weights on {linear.weight.device.type}, not float32 on the CPU"
    return None


def _concatenated(linears: list[torch.nn.Linear]) -> torch.Tensor:
    """One weight holding ``linears``' rows in order; each linear's weight becomes a view of it."""
    joined = torch.cat([linear.weight.detach() for linear in linears])
    start = 0
    for linear in linears:
        rows = linear.weight.shape[0]
        linear.weight.data = joined[start:start + rows]
        start += rows
    return joined


class LeanGemma3Step:
    """Batch-1 decoding steps over a ``FixedCache`` that the model's own prefill filled."""

    def __init__(self, model: Any, max_len: int = 4096):
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"the lean Gemma 3 step does not run this model: {reason}")
        text = _text_config(model)
        body = model.model
        self.heads, self.kv_heads, self.head_dim = text.num_attention_heads, text.num_key_value_heads, text.head_dim
        self.eps = text.rms_norm_eps
        self.window = text.sliding_window
        self.scaling = text.query_pre_attn_scalar**-0.5
        self.rotary = body.rotary_emb
        self.kinds = sorted(set(text.layer_types))
        self.rope: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.rope_length = 0
        self._ensure_rope(max_len)
        with torch.no_grad():  # not inference mode: the model's own weights become views of these
            self.embedding = body.embed_tokens.weight.detach()
            self.embed_scale = body.embed_tokens.embed_scale.to(self.embedding.dtype)
            self.final_norm = 1.0 + body.norm.weight.detach().float()
            self.layers = []
            for index, layer in enumerate(body.layers[:text.num_hidden_layers]):
                attention, mlp = layer.self_attn, layer.mlp
                self.layers.append({
                    "kind": text.layer_types[index],
                    "qkv": _concatenated([attention.q_proj, attention.k_proj, attention.v_proj]),
                    "o": attention.o_proj.weight.detach(),
                    "gate_up": _concatenated([mlp.gate_proj, mlp.up_proj]),
                    "down": mlp.down_proj.weight.detach(),
                    "input_norm": 1.0 + layer.input_layernorm.weight.detach().float(),
                    "post_attention_norm": 1.0 + layer.post_attention_layernorm.weight.detach().float(),
                    "pre_mlp_norm": 1.0 + layer.pre_feedforward_layernorm.weight.detach().float(),
                    "post_mlp_norm": 1.0 + layer.post_feedforward_layernorm.weight.detach().float(),
                    # q heads then k heads, each row normalised with its own weight
                    "qk_norm": torch.stack([1.0 + attention.q_norm.weight.detach().float()] * self.heads
                                           + [1.0 + attention.k_norm.weight.detach().float()] * self.kv_heads),
                })

    def _ensure_rope(self, length: int) -> None:
        """cos and sin for positions 0..length-1 (at least), from the model's own rotary module."""
        if length <= self.rope_length:
            return
        length = max(length, 2 * self.rope_length)
        half = self.head_dim // 2
        with torch.no_grad():
            positions = torch.arange(length)[None]
            probe = torch.zeros(1, dtype=torch.float32)
            for kind in self.kinds:
                cos, sin = self.rotary(probe, positions, kind)
                # rotate_half(x) * sin == (x's halves swapped) * [-sin_1, sin_2]: the same products
                self.rope[kind] = (cos[0].contiguous(), torch.cat([-sin[0, :, :half], sin[0, :, half:]], -1))
        self.rope_length = length

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Gemma3RMSNorm: x / rms(x) * (1 + w), in float32."""
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight

    def hidden(self, token: torch.Tensor, position: int, cache: FixedCache) -> torch.Tensor:
        """The final normed hidden state (1, hidden) for ``token`` (1, 1) at ``position``; writes its keys/values.

        Positions before ``position`` must already be in ``cache`` (prefill or earlier steps).
        """
        if position >= cache.max_len:
            raise ValueError(f"position {position} is past the cache ({cache.max_len} positions)")
        self._ensure_rope(position + 1)
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        rotary = {kind: (cos[position], sin[position]) for kind, (cos, sin) in self.rope.items()}
        window_start = max(0, position + 1 - self.window) if self.window else 0
        x = F.embedding(token.view(1), self.embedding) * self.embed_scale
        for index, layer in enumerate(self.layers):
            qkv = F.linear(self._norm(x, layer["input_norm"]), layer["qkv"]).view(heads + 2 * kv_heads, dim)
            qk = self._norm(qkv[:heads + kv_heads], layer["qk_norm"])
            cos, sin = rotary[layer["kind"]]
            qk = qk * cos + qk.view(heads + kv_heads, 2, dim // 2).flip(1).view(heads + kv_heads, dim) * sin
            keys, values = cache.keys[index], cache.values[index]
            if keys is None or values is None:
                raise ValueError("the lean step needs a cache the model's prefill has filled")
            keys[0, :, position] = qk[heads:]
            values[0, :, position] = qkv[heads + kv_heads:]
            start = window_start if layer["kind"] == SLIDING else 0
            attended = F.scaled_dot_product_attention(
                qk[:heads].view(1, heads, 1, dim), keys[:, :, start:position + 1], values[:, :, start:position + 1],
                scale=self.scaling, enable_gqa=kv_heads != heads)
            x = x + self._norm(F.linear(attended.view(1, heads * dim), layer["o"]), layer["post_attention_norm"])
            gate, up = F.linear(self._norm(x, layer["pre_mlp_norm"]), layer["gate_up"]).chunk(2, dim=-1)
            x = x + self._norm(F.linear(F.gelu(gate, approximate="tanh") * up, layer["down"]), layer["post_mlp_norm"])
        return self._norm(x, self.final_norm)
