"""Load the tokenizer and the base model the config names: quantized, on the right device.

One path for every kind of base model: resolve it (``resolve``), make it a local folder
where needed (the embedded model and GGUF files are converted once, ``embedded``),
then ``from_pretrained`` with safetensors only (unless ``model.allow_pickle``), remote
code only when ``model.trust_remote_code`` is on, bitsandbytes quantization per
``model.quantization`` (4-bit works on the CPU too with bitsandbytes >= 0.48) and
SDPA attention unless told otherwise. Failures a user can fix become ``UserError``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.modeling.resolve import EMBEDDED, ResolvedModel, resolve_model
from carexpert.runs.artifacts import is_adapter_dir

Progress = Callable[[str], None]
DTYPE_NAMES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32",
               "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def model_source(config: Config, progress: Progress | None = None) -> tuple[str, dict[str, Any], ResolvedModel]:
    """(name or folder for ``from_pretrained``, the kwargs every load of it needs, the resolution)."""
    model_cfg = config.model
    resolved = resolve_model(model_cfg)
    kwargs: dict[str, Any] = {}
    if model_cfg.trust_remote_code:
        kwargs["trust_remote_code"] = True
    if resolved.kind == EMBEDDED:
        from carexpert.modeling.embedded import ensure_embedded_model

        return str(ensure_embedded_model(model_cfg.cache_dir or None, progress)), kwargs, resolved
    if resolved.kind == "gguf":
        from carexpert.modeling.embedded import ensure_converted_gguf

        gguf = Path(resolved.location) / (resolved.gguf_file or "")
        return str(ensure_converted_gguf(gguf, model_cfg.cache_dir or None, progress)), kwargs, resolved
    if resolved.kind == "hub":
        if resolved.revision:
            kwargs["revision"] = resolved.revision
        if resolved.local_only:
            kwargs["local_files_only"] = True
    return resolved.location, kwargs, resolved


def load_tokenizer(config: Config, padding_side: str = "right", source: str | os.PathLike | None = None,
                   progress: Progress | None = None) -> Any:
    """The base model's tokenizer (or the one saved in ``source``), with a pad token.

    ``padding_side`` is "right" for training batches and "left" for batched generation.
    """
    from transformers import AutoTokenizer

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    if source is not None:
        name, kwargs = str(source), ({"trust_remote_code": True} if config.model.trust_remote_code else {})
    else:
        name, kwargs, _ = model_source(config, progress)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load the tokenizer of {name}: {_first_line(error)}", where="model.base_model",
                        fix="make sure the model folder has tokenizer files (tokenizer.json or tokenizer.model)") from error
    if tokenizer.pad_token is None:
        # No dedicated pad token: reuse EOS (or UNK). Labels mask padding by attention, not by id.
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    tokenizer.padding_side = padding_side
    return tokenizer


def pick_device(device: str | None = None) -> str:
    """``device`` if given; else this rank's GPU (``LOCAL_RANK``) when CUDA works; else the CPU."""
    if device:
        return str(device)
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', torch.cuda.current_device()))}"


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, DTYPE_NAMES[name])


def quantization_config(model_cfg: Any, quantization: str | None = None) -> Any:
    """The ``BitsAndBytesConfig`` for ``quantization`` (default: ``model_cfg.quantization``), or None."""
    kind = quantization or model_cfg.quantization
    if kind == "none":
        return None
    from transformers import BitsAndBytesConfig

    if kind in ("nf4", "fp4"):
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=kind,
                                  bnb_4bit_use_double_quant=bool(model_cfg.double_quant),
                                  bnb_4bit_compute_dtype=torch_dtype(model_cfg.compute_dtype))
    if kind == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise UserError(f"unknown quantization {kind!r}", where="model.quantization",
                    fix="use one of 'nf4', 'fp4', 'int8', 'none'")


def attention_implementation(model_cfg: Any, device: str, *, packed_training: bool = False) -> str:
    """'auto' means flash_attention_2 on a GPU where the package is installed, sdpa otherwise.

    Training on packed rows on a GPU without flash_attn uses PyTorch's own varlen flash
    attention (``carexpert.modeling.attention``) where this PyTorch has it.
    """
    chosen = model_cfg.attn_implementation
    if chosen != "auto":
        return chosen
    sixteen_bit = model_cfg.compute_dtype in ("bfloat16", "float16")
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None and sixteen_bit:
        return "flash_attention_2"
    from carexpert.modeling.attention import register_varlen, varlen_available

    if packed_training and sixteen_bit and varlen_available(device):
        return register_varlen()
    return "sdpa"


def load_base_model(config: Config, for_training: bool, device: str | None = None, *,
                    quantization: str | None = None, dtype: str | None = None,
                    progress: Progress | None = None) -> Any:
    """The base causal LM per ``config.model`` on ``device`` (see ``pick_device``).

    ``quantization`` and ``dtype`` override the config (``load_for_inference`` uses them to
    load a bf16 base for merging). The dtype of non-quantized weights is
    ``model.compute_dtype``, or float32 when ``train.precision = "fp32"``.
    """
    from transformers import AutoModelForCausalLM

    name, kwargs, resolved = model_source(config, progress)
    model_cfg = config.model
    device = pick_device(device)
    if dtype is None:
        dtype = "float32" if config.train.precision == "fp32" else model_cfg.compute_dtype
    quant = quantization_config(model_cfg, quantization)
    if quant is not None:
        kwargs["quantization_config"] = quant
    if not model_cfg.allow_pickle:
        kwargs["use_safetensors"] = True
    if progress:
        progress(f"Loading {resolved.label} on {device}"
                 + (f" ({quantization or model_cfg.quantization})" if quant is not None else ""))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name, dtype=torch_dtype(dtype), device_map={"": device},
            attn_implementation=attention_implementation(
                model_cfg, device, packed_training=for_training and config.train.padding_free), **kwargs)
    except Exception as error:
        raise _as_user_error(error, name, device, model_cfg) from error
    if for_training:
        model.config.use_cache = False  # the KV cache only costs memory while training
    else:
        model.eval()
    return model


def load_for_inference(config: Config, adapter_dir: str | os.PathLike | None = None, merge: bool = False, *,
                       device: str | None = None, progress: Progress | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) ready to generate: the base, plus the LoRA adapter in ``adapter_dir``.

    ``merge=True`` folds the adapter into the weights for the fastest decoding. A 4-bit
    base cannot hold merged weights, so the base is then loaded unquantized in bf16.
    The tokenizer pads on the left, for batched generation. Unmerged on the CPU, the
    unquantized weights are float32: without bf16 matrix units a CPU decodes about twice
    as fast in fp32 (measured on the embedded model).
    """
    adapter = _check_adapter(Path(adapter_dir), config.model.allow_pickle) if adapter_dir else None
    device = pick_device(device)
    quantization = "none" if merge and adapter else None
    dtype = "bfloat16" if quantization == "none" else ("float32" if device == "cpu" else None)
    model = load_base_model(config, for_training=False, device=device, quantization=quantization,
                            dtype=dtype, progress=progress)
    tokenizer_source = adapter if adapter and (adapter / "tokenizer_config.json").is_file() else None
    tokenizer = load_tokenizer(config, padding_side="left", source=tokenizer_source, progress=progress)
    if adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
        except (ValueError, KeyError, RuntimeError) as error:
            raise UserError(f"the adapter in {adapter} does not fit this base model: {_first_line(error)}",
                            where="model.base_model",
                            fix="use the base model the adapter was trained on (see the run's config.toml)") from error
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def _check_adapter(adapter: Path, allow_pickle: bool) -> Path:
    if not is_adapter_dir(adapter):
        raise UserError(f"no LoRA adapter in {str(adapter)!r} (adapter_config.json missing)", where=str(adapter),
                        fix="give a run's adapter/ folder (written when training finishes) or a checkpoint folder")
    if not (adapter / "adapter_model.safetensors").is_file():
        if (adapter / "adapter_model.bin").is_file() and not allow_pickle:
            raise UserError(f"the adapter in {str(adapter)!r} is stored as pickle (adapter_model.bin), "
                            "which can run arbitrary code; carexpert refuses it", where=str(adapter),
                            fix="if you trust it, set model.allow_pickle = true")
        if not (adapter / "adapter_model.bin").is_file():
            raise UserError(f"the adapter in {str(adapter)!r} has no weights (adapter_model.safetensors)",
                            where=str(adapter), fix="use a complete adapter folder")
    return adapter


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _as_user_error(error: Exception, name: str, device: str, model_cfg: Any) -> Exception:
    """Sort a loading failure into a ``UserError`` with a fix, or leave it as the bug it is."""
    import torch

    text = str(error)
    where = f"model.base_model = {model_cfg.base_model!r}"
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in text.lower() \
            or "can't allocate memory" in text.lower():
        return UserError(f"not enough memory on {device} to load {name}", where=where,
                         fix="use quantization = \"nf4\", a smaller model, or a device with more free memory "
                             "(see 'carexpert check')")
    if isinstance(error, ImportError) or "bitsandbytes" in text:
        return UserError(f"cannot load {name} with quantization {model_cfg.quantization!r}: {_first_line(error)}",
                         where="model.quantization",
                         fix="install bitsandbytes >= 0.48 (pip install bitsandbytes) or set quantization = \"none\"")
    if isinstance(error, OSError) and "safetensors" in text and not model_cfg.allow_pickle:
        return UserError(f"{name} has no safetensors weights; carexpert refuses pickle weights, which can run code",
                         where=where, fix="use a model with *.safetensors files, or, if you trust it, "
                                          "set model.allow_pickle = true")
    if isinstance(error, OSError):
        return UserError(f"cannot load {name}: {_first_line(error)}", where=where,
                         fix="check the model folder or hub id (and network access for a hub id)")
    if isinstance(error, ValueError) and ("trust_remote_code" in text or "does not recognize" in text
                                          or "Unrecognized" in text):
        return UserError(f"transformers does not know the architecture of {name}: {_first_line(error)}",
                         where=where, fix="update transformers, or set model.trust_remote_code = true "
                                          "if you trust the model's own code")
    return error
