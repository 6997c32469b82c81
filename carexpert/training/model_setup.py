"""Load the model to train: base weights (4-bit per config), LoRA, optional fp32 upcast.

The frozen layers stay in the dtype they were loaded in: peft's
``prepare_model_for_kbit_training`` upcasts every non-quantized weight (embeddings,
norms, the 262k-token output layer of Gemma) to fp32, which costs memory and time
for no measured gain; ``train.upcast_frozen`` turns it back on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.training.plan import TrainPlan

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def device_for_rank(plan: TrainPlan, local_rank: int) -> str:
    return f"cuda:{local_rank}" if plan.device == "cuda" else "cpu"


def load_for_training(config: Any, plan: TrainPlan, device: str) -> tuple[Any, Any]:
    """(peft model, tokenizer) ready for the Trainer."""
    import torch
    from transformers import set_seed

    model_config = dataclasses.replace(config.model, compute_dtype=plan.compute_dtype)
    run_config = dataclasses.replace(config, model=model_config)
    tokenizer = _load_tokenizer(run_config)
    model = _load_base_model(run_config, plan, device)
    if config.train.upcast_frozen:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=plan.gradient_checkpointing)
    set_seed(config.train.seed)  # the LoRA initialisation is part of "same seed, same run"
    model = _apply_lora(model, run_config)
    # No KV cache while training: it wastes memory, and with a cache transformers skips the
    # packed-sequence mask, so packed examples would silently attend to each other.
    model.config.use_cache = False
    torch.manual_seed(config.train.seed)
    return model, tokenizer


def model_summary(model: Any) -> dict[str, Any]:
    """Total and trainable parameters, their share, the memory footprint, the 4-bit layer count."""
    total = trainable = 0
    for param in model.parameters():
        count = param.numel()
        if hasattr(param, "quant_state") or param.__class__.__name__ == "Params4bit":
            count *= 2  # two 4-bit weights per stored byte
        total += count
        if param.requires_grad:
            trainable += count
    quantized = sum(1 for m in model.modules() if m.__class__.__name__ in ("Linear4bit", "Linear8bitLt"))
    footprint = model.get_memory_footprint() if hasattr(model, "get_memory_footprint") else None
    return {"total_params": total, "trainable_params": trainable,
            "trainable_percent": 100.0 * trainable / total if total else 0.0,
            "footprint_bytes": footprint, "quantized_layers": quantized}


# --- adapters: to be replaced by carexpert.modeling ---------------------------------

def _model_path(config: Any) -> Path:
    path = Path(config.model.base_model).expanduser()
    if not (path / "config.json").is_file():
        raise UserError("base model not found (no config.json there)", where=f"model.base_model = {config.model.base_model!r}",
                        fix="point model.base_model at a folder with config.json and safetensors weights")
    return path


def _load_tokenizer(config: Any) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_model_path(config))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def _load_base_model(config: Any, plan: TrainPlan, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = config.model.quantization
    quant = None
    if quantization in ("nf4", "fp4"):
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantization,
                                   bnb_4bit_use_double_quant=config.model.double_quant,
                                   bnb_4bit_compute_dtype=getattr(torch, config.model.compute_dtype))
    elif quantization == "int8":
        quant = BitsAndBytesConfig(load_in_8bit=True)
    attn = "sdpa" if config.model.attn_implementation == "auto" else config.model.attn_implementation
    return AutoModelForCausalLM.from_pretrained(
        _model_path(config), dtype=getattr(torch, DTYPES[plan.precision]), quantization_config=quant,
        device_map={"": device}, attn_implementation=attn)


def _apply_lora(model: Any, config: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = config.lora
    return get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                            target_modules=list(lora.target_modules), bias=lora.bias,
                                            task_type="CAUSAL_LM"))
