"""What a loaded model is made of: parameters, the trainable share, memory, quantized layers.

A 4-bit weight is stored packed (two values a byte, as a uint8 tensor of half the
size), so counting ``numel()`` would halve it: parameters are counted by their logical
shape (``quant_state.shape``), and the footprint by the bytes actually held, including
the 4-bit quantization statistics.
"""

from __future__ import annotations

import math
from typing import Any

QUANTIZED_LAYER_CLASSES = ("Linear4bit", "Linear8bitLt")


def is_quantized_layer(module: Any) -> bool:
    """A bitsandbytes 4-bit or 8-bit linear layer (not peft's LoRA wrapper of the same name)."""
    cls = type(module)
    return cls.__name__ in QUANTIZED_LAYER_CLASSES and cls.__module__.startswith("bitsandbytes")


def logical_numel(param: Any) -> int:
    """Number of weights a parameter stands for (a packed 4-bit tensor counts at full size)."""
    quant_state = getattr(param, "quant_state", None)
    if quant_state is not None and getattr(quant_state, "shape", None) is not None:
        return math.prod(quant_state.shape)
    return param.numel()


def _quant_state_bytes(param: Any) -> int:
    state = getattr(param, "quant_state", None)
    if state is None:
        return 0
    total = 0
    for tensor in (getattr(state, "absmax", None), getattr(state, "code", None), getattr(state, "offset", None)):
        if tensor is not None and hasattr(tensor, "element_size"):
            total += tensor.numel() * tensor.element_size()
    nested = getattr(state, "state2", None)
    if nested is not None:
        for tensor in (getattr(nested, "absmax", None), getattr(nested, "code", None)):
            if tensor is not None and hasattr(tensor, "element_size"):
                total += tensor.numel() * tensor.element_size()
    return total


def describe_model(model: Any) -> dict[str, Any]:
    """``total_params``, ``trainable_params``, ``trainable_percent``, ``footprint_bytes``, ``quantized_layers``.

    Shared (tied) parameters count once. ``footprint_bytes`` is parameters + buffers +
    4-bit statistics as held in memory.
    """
    total = trainable = footprint = 0
    for param in model.parameters():
        count = logical_numel(param)
        total += count
        if param.requires_grad:
            trainable += count
        footprint += param.numel() * param.element_size() + _quant_state_bytes(param)
    for buffer in model.buffers():
        footprint += buffer.numel() * buffer.element_size()
    quantized = sum(1 for module in model.modules() if is_quantized_layer(module))
    return {
        "total_params": total,
        "trainable_params": trainable,
        "trainable_percent": 100.0 * trainable / total if total else 0.0,
        "footprint_bytes": footprint,
        "quantized_layers": quantized,
    }
