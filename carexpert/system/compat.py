"""Settings that are valid on paper but cannot work on this machine.

Used by ``carexpert config validate`` and ``carexpert check``. Only real dead ends
count: a paged optimizer without CUDA is not one (training falls back to adamw_torch
and says so in the run's events), nor is a GPU-only speed-up on the CPU.
"""

from __future__ import annotations

from carexpert.config import Config
from carexpert.system.probe import Environment, probe_environment


def compatibility_problems(config: Config, env: Environment | None = None) -> list[str]:
    """One line per setting this machine cannot honour, naming the key and the fix."""
    model_cfg, train = config.model, config.train
    uses_4bit = model_cfg.quantization in ("nf4", "fp4")
    if env is None:
        env = probe_environment(probe_bnb=uses_4bit)
    problems = []
    if uses_4bit and not env.bnb_4bit_ok:
        problems.append(
            f"model.quantization = {model_cfg.quantization!r}: 4-bit bitsandbytes does not work on "
            f"{env.bnb_device} here ({env.bnb_4bit_error}); install bitsandbytes >= 0.48 or set "
            "quantization = \"none\"")
    if model_cfg.quantization == "int8" and env.bnb_version is None:
        problems.append("model.quantization = 'int8': bitsandbytes is not installed; "
                        "pip install bitsandbytes or set quantization = \"none\"")
    if env.training_device == "cuda":
        no_bf16 = [gpu for gpu in env.gpus if not gpu.bf16]
        names = ", ".join(f"GPU {gpu.index} ({gpu.name})" for gpu in no_bf16)
        if no_bf16 and train.precision == "bf16":
            problems.append(f"train.precision = 'bf16': {names} has no bfloat16 support; "
                            "use precision = \"fp16\" or \"auto\"")
        if no_bf16 and model_cfg.compute_dtype == "bfloat16" and (uses_4bit or train.precision == "bf16"):
            problems.append(f"model.compute_dtype = 'bfloat16': {names} has no bfloat16 support; "
                            "use compute_dtype = \"float16\"")
    if model_cfg.attn_implementation == "flash_attention_2":
        if env.training_device != "cuda":
            problems.append("model.attn_implementation = 'flash_attention_2' needs a CUDA GPU; use \"auto\" or \"sdpa\"")
        elif not env.flash_attn:
            problems.append("model.attn_implementation = 'flash_attention_2': the flash-attn package is not "
                            "installed; pip install flash-attn, or use \"auto\"")
    return problems
