"""The decoding path: which weights to load and which loop decodes them.

Two weight paths on a GPU (``chat.fast_path``):

- ``merged``: the adapter is merged into unquantized bf16 weights (no LoRA layers
  left, no 4-bit dequantization per token).
- ``4bit``: the quantized base + the adapter as trained; least memory. bitsandbytes
  0.50's 4-bit layers compile and replay as CUDA graphs (measured on an H100 with a
  Mistral-7B-shaped model: 86 tokens/s compiled against 14 eager).

Either way a GPU decodes with carexpert's own loop (``graph_decode``): an eager
prefill, then one CUDA graph per token that holds the whole step (forward on a static
cache, sampling, the next step's inputs), with the forward compiled by
``torch.compile`` inside it. It replaced ``generate`` with a static cache and
``torch.compile``, which fell off cliffs on the first answer after load and on answers
crossing Gemma 3's sliding window (issue 14; docs/benchmarks.md). If recording the
step fails, the plan falls back to that compiled ``generate`` and its reason says so;
if compiling ``generate`` fails too, to eager ``generate``.

The static cache holds at most ``STATIC_CACHE_TOKENS``: every decoding step attends
over the whole static cache, and a cache the size of Mistral's 32,768-token context
took the merged path from 118 to 42 tokens/s (docs/benchmarks.md); the session's
context window (history trimming) shrinks to the same size.

``auto`` takes ``merged`` when the bf16 weights fit in free GPU memory with room for
the KV cache. The whole decision is ``choose_decode_plan``, one small pure function
that the benchmarks (issue 8) tune from measurements. On a CPU the fast path falls
back cleanly to ``full``: unquantized float32 weights with the adapter unmerged
(``modeling.load_for_inference`` merges in bf16, which CPUs without bf16 units run
slowly), decoded by the same own loop run eagerly (no graphs), with a cache sized
to each answer; its step runs Gemma 3's layers through ``lean_gemma3`` and the output
head through ``screened_head`` where the model allows, and the plan's reason names
what it falls back to otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.chat.streaming import run_on_decode_thread

GIB = 1024**3
STATIC_CACHE_TOKENS = 4096  # prompt + answer in one turn; see the module docstring
# Headroom beyond the bf16 weights that "auto" asks for before choosing merged:
# KV cache, activations, the CUDA context and the allocator's slack.
MERGED_HEADROOM_FRACTION = 0.25
MERGED_HEADROOM_BYTES = 2 * GIB
# Which loop decodes on a CPU: the own loop, eagerly (docs/benchmarks.md, "CPU chat decoding").
CPU_DECODER = "loop"


@dataclass(frozen=True)
class DecodePlan:
    """How a chat model is loaded and decoded."""

    weights: str        # "merged": bf16, adapter merged in; "4bit": quantized base + adapter;
                        # "full": unquantized (fp32 on a CPU), adapter unmerged
    device: str         # "cuda" or "cpu"
    static_cache: bool  # generate with cache_implementation="static"
    compile: bool       # compile the decoding step (own loop: its forward; generate: its static-cache step)
    reason: str         # one line saying why, shown by the CLI and the app
    decoder: str = "generate"  # "graph": own loop, one CUDA graph per token; "loop": own loop, eager (CPU);
                               # "generate": transformers' generate

    def describe(self) -> str:
        loops = {"graph": "own decode loop in CUDA graphs", "loop": "own decode loop"}
        extras = [name for name, on in (("static cache", self.static_cache), ("compiled", self.compile),
                                        (loops.get(self.decoder, ""), self.decoder in loops)) if on]
        return f"{self.weights} weights on {self.device}" + (f" ({', '.join(extras)})" if extras else "") \
            + f": {self.reason}"


def choose_decode_plan(fast_path: str, *, device: str, quantization: str,
                       weight_bytes_bf16: int | None, free_bytes: int | None) -> DecodePlan:
    """Pick the decoding path. Pure: every input is a plain value, so it is easy to tune and test.

    ``weight_bytes_bf16`` is the model's size in bf16 (None when unknown) and
    ``free_bytes`` the free memory on ``device`` (None when unknown).
    """
    if device != "cuda":
        if fast_path == "4bit" and quantization != "none":
            return DecodePlan("4bit", device, False, False, "chat.fast_path = '4bit' (slow on a CPU)", CPU_DECODER)
        return DecodePlan("full", device, False, False,
                          "no GPU: unquantized float32 weights, adapter unmerged, cache sized per answer", CPU_DECODER)
    fast = DecodePlan("merged", device, True, True, "", "graph")
    if quantization == "none":
        return dataclasses.replace(fast, reason="model.quantization = 'none': weights are unquantized anyway")
    if fast_path == "merged":
        return dataclasses.replace(fast, reason="chat.fast_path = 'merged'")
    low_memory = DecodePlan("4bit", device, True, True, "", "graph")
    if fast_path == "4bit":
        return dataclasses.replace(low_memory, reason="chat.fast_path = '4bit'")
    if weight_bytes_bf16 is None or free_bytes is None:
        return dataclasses.replace(low_memory, reason="model size or free GPU memory unknown: the 4-bit path is safe")
    needed = int(weight_bytes_bf16 * (1 + MERGED_HEADROOM_FRACTION)) + MERGED_HEADROOM_BYTES
    if needed <= free_bytes:
        return dataclasses.replace(
            fast, reason=f"bf16 weights need ~{needed / GIB:.1f} GiB, {free_bytes / GIB:.1f} GiB free")
    return dataclasses.replace(
        low_memory, reason=f"bf16 weights need ~{needed / GIB:.1f} GiB, only {free_bytes / GIB:.1f} GiB free")


def safetensors_parameter_count(model_dir: str | Path) -> int | None:
    """Parameters stored in a folder's safetensors files, read from their headers only (no weights loaded)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    try:
        for file in files:
            with open(file, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
            for name, entry in header.items():
                if name != "__metadata__":
                    count = 1
                    for dim in entry["shape"]:
                        count *= dim
                    total += count
    except (OSError, ValueError, KeyError, struct.error):
        return None
    return total


def local_weights_dir(source: str, revision: str = "") -> Path | None:
    """The folder holding ``source``'s weights: itself, or a hub id's snapshot in the local cache (no network)."""
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, revision=revision or None, local_files_only=True,
                                      allow_patterns=["*.safetensors", "*.json"]))
    except Exception:  # noqa: BLE001 - not a hub id, not cached, or no hub library: the size stays unknown
        return None


def plan_for(config: Any, base_dir: str | Path | None) -> DecodePlan:
    """Measure this machine and the model folder, then ``choose_decode_plan``."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    free = torch.cuda.mem_get_info()[0] if device == "cuda" else None
    params = safetensors_parameter_count(base_dir) if base_dir and Path(base_dir).is_dir() else None
    return choose_decode_plan(config.chat.fast_path, device=device, quantization=config.model.quantization,
                              weight_bytes_bf16=None if params is None else params * 2, free_bytes=free)


def config_for_plan(config: Any, plan: DecodePlan) -> Any:
    """The config to load with: the merged and full paths load unquantized weights."""
    if plan.weights in ("merged", "full") and config.model.quantization != "none":
        return dataclasses.replace(config, model=dataclasses.replace(config.model, quantization="none"))
    return config


def apply_plan(model: Any, plan: DecodePlan, max_cache_len: int) -> None:
    """Set the model's generation defaults for the plan (static cache sized once for every turn)."""
    generation = model.generation_config
    if plan.static_cache:
        generation.cache_implementation = "static"
        generation.max_cache_len = max_cache_len
    generation.disable_compile = not plan.compile
    if plan.compile:
        allow_compiling_quantized(model)


def allow_compiling_quantized(model: Any) -> None:
    """Let ``generate`` compile a bitsandbytes model, whose quantizer says it cannot be compiled.

    Only this model's quantizer object changes (a subclass that answers yes), nothing global.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quantizer = getattr(base, "hf_quantizer", None)
    if quantizer is not None and not quantizer.is_compileable:
        quantizer.__class__ = type(quantizer.__class__.__name__ + "Compiled", (quantizer.__class__,),
                                   {"is_compileable": property(lambda self: True)})


def uncompiled(model: Any, plan: DecodePlan, error: BaseException) -> DecodePlan:
    """Go back to eager decoding with the dynamic cache after a failed compiled warm-up."""
    generation = model.generation_config
    generation.cache_implementation = None
    generation.disable_compile = True
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    return dataclasses.replace(plan, static_cache=False, compile=False, decoder="generate",
                               reason=f"{plan.reason}; compiling failed ({type(error).__name__}: {first_line}), "
                                      "decoding uncompiled")


def warm_up(model: Any, tokenizer: Any, plan: DecodePlan, progress: Callable[[str], None] | None = None, *,
            max_cache_len: int | None = None, sampling: Any = None) -> DecodePlan:
    """Pay for compilation and CUDA-graph recording now, not on the user's first question.

    Returns the plan in effect: ``plan``; or, when the own loop cannot be set up, the
    ``generate`` plan with the reason; or an uncompiled one if compiling failed.
    ``max_cache_len`` sizes the own loop's static cache (default: the one ``apply_plan``
    gave generate); ``sampling`` (``SamplingSettings``) names the sampling graph to record
    besides the greedy one.
    """
    if plan.decoder != "generate":
        plan = start_own_loop(model, tokenizer, plan, progress, max_cache_len=max_cache_len, sampling=sampling)
        if plan.decoder != "generate":
            return plan
    if not plan.compile:
        return plan
    import torch

    if progress:
        progress("warming up the compiled decoder (first time only)")
    ids = tokenizer(WARM_UP_TEXT, return_tensors="pt")["input_ids"]
    ids = ids.to(model.device)

    def generate_three_times() -> None:
        with torch.inference_mode():
            for _ in range(3):  # compile, record the CUDA graph, replay it
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=16,
                               do_sample=False, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)

    # On the thread that will decode every answer: compiled CUDA graphs are per thread.
    try:
        run_on_decode_thread(generate_three_times)
    except Exception as error:  # noqa: BLE001 - a backend that cannot compile this model: decode eagerly instead
        fallback = uncompiled(model, plan, error)
        if progress:
            progress(f"decoding path: {fallback.describe()}")
        return fallback
    return plan


WARM_UP_TEXT = "Warm-up: how many cylinders does a V8 have?"


def start_own_loop(model: Any, tokenizer: Any, plan: DecodePlan, progress: Callable[[str], None] | None = None, *,
                   max_cache_len: int | None = None, sampling: Any = None) -> DecodePlan:
    """Build the own decode loop for ``model``, record its steps and attach it; the plan in effect.

    Any failure (an attention kernel it cannot feed, a step that cannot be recorded as a
    CUDA graph) detaches it and returns the ``generate`` plan, saying why.
    """
    from carexpert.chat import graph_decode
    from carexpert.chat.decode_request import DecodeRequest
    from carexpert.chat.decode_step import SamplingParams

    graphs = plan.decoder == "graph"
    if max_cache_len is None:
        max_cache_len = getattr(model.generation_config, "max_cache_len", None) or STATIC_CACHE_TOKENS
    requests = [SamplingParams(True)]
    if sampling is not None and not sampling.greedy:
        requests.append(SamplingParams(False, sampling.temperature, sampling.top_p, sampling.top_k,
                                       sampling.repetition_penalty))
    if progress and graphs:
        progress("recording the decoding step as a CUDA graph (first time only)")

    def build_and_record() -> graph_decode.GraphDecoder:
        decoder = graph_decode.GraphDecoder(model, max_cache_len, graphs=graphs, compile_step=graphs and plan.compile)
        ids = tokenizer(WARM_UP_TEXT, return_tensors="pt")["input_ids"]
        decoder.warm_up(ids, [DecodeRequest(params, 4, frozenset()) for params in requests])
        return decoder

    try:
        decoder = run_on_decode_thread(build_and_record)
    except Exception as error:  # noqa: BLE001 - any failure: generate decodes instead, and the plan says why
        graph_decode.detach(model)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        fallback = dataclasses.replace(plan, decoder="generate", reason=(
            f"{plan.reason}; own decode loop failed ({type(error).__name__}: {first_line}), decoding with generate"))
        if progress:
            progress(f"decoding path: {fallback.describe()}")
        return fallback
    graph_decode.attach(model, decoder)
    cpu_step = "" if graphs else decoder.cpu_step()  # the lean layers and screened head, or what it fell back to
    if cpu_step:
        plan = dataclasses.replace(plan, reason=f"{plan.reason}; CPU step: {cpu_step}")
        if progress:
            progress(f"CPU decoding step: {cpu_step}")
    if decoder.compile_error:
        plan = dataclasses.replace(plan, compile=False, reason=(
            f"{plan.reason}; compiling the step failed ({decoder.compile_error}), recorded it uncompiled"))
        if progress:
            progress(f"decoding path: {plan.describe()}")
    return plan
