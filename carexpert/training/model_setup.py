"""Load the model to train through ``carexpert.modeling``, as the plan decided.

The config is adjusted to the plan before loading, so the model is loaded once, in
the dtype the run trains in: on a CPU without bf16 the non-quantized weights and the
4-bit layers' compute are fp32 (see ``plan``); checkpointing is 'on' or 'off', never
'auto', by the time modeling sees it. The frozen layers are not upcast to fp32
unless ``train.upcast_frozen`` (modeling's ``apply_lora``). When the plan compiles,
each decoder layer is wrapped by ``torch.compile`` (``compile_decoder_layers``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from carexpert.config import Config
from carexpert.training.plan import TrainPlan


def device_for_rank(plan: TrainPlan, local_rank: int) -> str:
    return f"cuda:{local_rank}" if plan.device == "cuda" else "cpu"


def planned_config(config: Config, plan: TrainPlan) -> Any:
    """``config`` with the settings the plan resolved for this machine."""
    model = dataclasses.replace(config.model, compute_dtype=plan.compute_dtype)
    train = dataclasses.replace(config.train, precision=plan.precision, optimizer=plan.optimizer,
                                gradient_checkpointing="on" if plan.gradient_checkpointing else "off")
    return dataclasses.replace(config, model=model, train=train)


def load_tokenizer_for_training(config: Config) -> Any:
    from carexpert.modeling import load_tokenizer

    return load_tokenizer(config, padding_side="right")


def load_for_training(config: Config, plan: TrainPlan, device: str) -> Any:
    """The peft model (frozen base + fresh LoRA), seeded so the same seed gives the same adapter."""
    from transformers import set_seed

    from carexpert.modeling import apply_lora, load_base_model

    run_config = planned_config(config, plan)
    model = load_base_model(run_config, for_training=True, device=device)
    # No KV cache while training: it wastes memory, and with a cache transformers skips the
    # packed-sequence mask, so packed examples would silently attend to each other.
    model.config.use_cache = False
    set_seed(config.train.seed)  # the LoRA initialisation is part of "same seed, same run"
    model = apply_lora(model, run_config)
    if plan.compile:
        compile_decoder_layers(model)
    return model


def compile_decoder_layers(model: Any) -> int:
    """``torch.compile`` every decoder layer (dynamic token count); returns how many.

    Per layer, not the whole model: the layers share one code object, so one compiled
    graph (per attention kind) serves all of them, and the loss, hooks and peft wrapper
    around them stay eager. Measured on an H100 with the 4-bit Mistral-7B shape:
    11,476 tokens/s against 8,837-10,006 eager (docs/benchmarks.md). The embedding
    output is made to require grad so the first layer sees the same inputs as the
    others (no second graph for it). Evaluation runs eager (``_training_only``). A
    compile that fails falls back to eager (``suppress_errors``), with the compiler's
    warning in train.log.
    """
    import torch
    import torch._dynamo

    from carexpert.training.loss import causal_lm

    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 64))
    config.suppress_errors = True
    base = causal_lm(model)
    layers = getattr(base.get_decoder(), "layers", None)
    if layers is None:
        return 0
    base.enable_input_require_grads()
    for layer in layers:
        layer._compiled_call_impl = _training_only(layer, torch.compile(layer._call_impl, dynamic=True))
    return len(layers)


def _training_only(layer: Any, compiled: Any) -> Any:
    """The compiled call while gradients are on; evaluation (no grad) stays eager.

    An evaluation pass would otherwise compile a second graph (no backward, another grad
    mode) for a few batches: tens of seconds of compiler for well under a second of work.
    """
    import torch

    def call(*args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            return compiled(*args, **kwargs)
        return layer._call_impl(*args, **kwargs)

    return call
