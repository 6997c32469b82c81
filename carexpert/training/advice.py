"""What to change after running out of GPU memory, computed from the run's own settings.

Each item is ``{"text": ..., "changes": {"section.key": value}}``: the text for a
person, the changes for a program (the app offers them as one-key fixes; the CLI
prints the matching ``carexpert config set`` line). Ordered by how little they cost
the result: a smaller micro-batch with more accumulation keeps the effective batch
and changes nothing but speed; checkpointing costs ~30% speed; a shorter
``max_length`` cuts long examples; a lower LoRA rank changes the adapter.
"""

from __future__ import annotations

from typing import Any

from carexpert.config import Config


def _round_down(value: int, multiple: int) -> int:
    return max(multiple, value // multiple * multiple)


def oom_advice(config: Config, *, micro_batch: int | None = None, grad_accum: int | None = None,
               gradient_checkpointing: bool | None = None) -> list[dict[str, Any]]:
    """Concrete memory-cutting changes; ``micro_batch`` etc. are what the run really used (its plan)."""
    train, data, lora, model = config.train, config.data, config.lora, config.model
    batch = micro_batch or train.batch_size
    accum = grad_accum or train.grad_accum
    checkpointing = train.gradient_checkpointing == "on" if gradient_checkpointing is None else gradient_checkpointing
    items: list[dict[str, Any]] = []
    if batch > train.batch_size and train.auto_micro_batch:
        items.append({"text": f"auto_micro_batch grew the micro-batch to {batch}: turn it off to keep "
                              f"batch_size {train.batch_size}",
                      "changes": {"train.auto_micro_batch": False}})
        batch, accum = train.batch_size, train.grad_accum
    if batch > 1:
        new_batch = batch // 2
        new_accum = accum * batch // new_batch
        items.append({"text": f"batch_size {batch} → {new_batch} with grad_accum {accum} → {new_accum} keeps the "
                              f"effective batch of {new_batch * new_accum} (slower, same learning)",
                      "changes": {"train.batch_size": new_batch, "train.grad_accum": new_accum}})
    if not checkpointing:
        items.append({"text": "turn gradient_checkpointing on (recomputes activations: far less memory, ~30% slower)",
                      "changes": {"train.gradient_checkpointing": "on"}})
    if data.max_length > 64:
        shorter = _round_down(data.max_length * 3 // 4, 64) if data.max_length >= 128 else 64
        items.append({"text": f"max_length {data.max_length} → {shorter} (longer examples are cut)",
                      "changes": {"data.max_length": shorter}})
    if lora.r > 8:
        items.append({"text": f"lora.r {lora.r} → {lora.r // 2} (a smaller adapter)",
                      "changes": {"lora.r": lora.r // 2}})
    if model.quantization in ("none", "int8"):
        items.append({"text": f"model.quantization {model.quantization} → nf4 (4-bit base weights, QLoRA)",
                      "changes": {"model.quantization": "nf4"}})
    return items


def config_set_command(item: dict[str, Any]) -> str:
    """The ``carexpert config set`` line that applies one advice item."""
    parts = []
    for key, value in item["changes"].items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{key}={text}")
    return "carexpert config set " + " ".join(parts)
