"""Put the LoRA adapter from ``config.lora`` on a base model.

Only the adapter trains; the base stays frozen in the dtype it was loaded in. peft's
``prepare_model_for_kbit_training`` would upcast every non-quantized frozen weight
(embeddings, norms, Gemma's 262k-token output layer) to fp32: more memory for no
measured gain, so it runs only when ``train.upcast_frozen`` asks for it.
"""

from __future__ import annotations

from typing import Any, cast

from carexpert.config import Config
from carexpert.errors import UserError


def linear_module_names(model: Any) -> list[str]:
    """The distinct leaf names of the model's linear layers (what ``target_modules`` may name)."""
    import torch

    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):  # bitsandbytes' 4/8-bit layers subclass it
            leaf = full_name.rsplit(".", 1)[-1]
            if leaf != "lm_head":
                names.add(leaf)
    return sorted(names)


def apply_lora(model: Any, config: Config) -> Any:
    """The peft model with a fresh LoRA adapter per ``config.lora`` (trainable adapter, frozen base)."""
    from peft import LoraConfig, get_peft_model

    lora = config.lora
    available = linear_module_names(model)
    missing = [name for name in lora.target_modules if name not in available]
    if missing:
        raise UserError(f"this model has no linear layers named {', '.join(missing)}", where="lora.target_modules",
                        fix=f"choose among: {', '.join(available)}")
    if config.train.upcast_frozen:
        from peft import prepare_model_for_kbit_training

        # Gradient checkpointing is the trainer's decision; here only the fp32 upcast and freezing.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                             target_modules=list(lora.target_modules), bias=cast(Any, lora.bias),  # one of the schema's choices
                             task_type="CAUSAL_LM")
    model = get_peft_model(model, peft_config)
    if config.train.gradient_checkpointing != "off":
        # With checkpointing the frozen embeddings' output needs requires_grad, or no gradient
        # reaches the adapters of the first checkpointed block.
        model.enable_input_require_grads()
    return model
