"""Decide how a run trains on this machine, and say honestly where it differs from the config.

Every decision that depends on the hardware lives here as a small pure function, so
it can be tested without a GPU and tuned from benchmark results:

- precision: bf16 where the device does it natively. A CPU without AVX512-BF16/AMX
  emulates bf16 — measured on an AVX2 EPYC, a 1024x640x2048 linear layer's forward +
  backward took 0.19 s in fp32 and 4.5 s in bf16 (5.7 s under autocast), and NF4 with
  bf16 compute 2.3 s against 0.15 s with fp32 compute — so such a CPU trains in fp32
  (and 4-bit layers compute in fp32), with a notice;
- optimizer: 'auto' is fused AdamW on a GPU for base models under ``BIG_MODEL_PARAMS``
  (their adapter's 32-bit state is a few MB and one fused kernel replaces a launch per
  tensor) and the seed's paged 8-bit AdamW for bigger ones (memory first); bitsandbytes'
  8-bit/paged AdamW need CUDA; on the CPU adamw_torch, with a notice when one was asked for;
- compile 'auto': ``torch.compile`` of each decoder layer on a GPU for base models of
  ``BIG_MODEL_PARAMS`` and more, when gradient checkpointing is off (the two were never
  measured together); never on the CPU. A small model's whole run lasts about as long
  as the compiler takes (a minute or more for the 7B shape's layer on an H100), so
  'auto' leaves it eager; 'on' compiles it anyway;
- gradient checkpointing 'auto': on only when ``carexpert.estimate`` says the
  activations would not fit the GPU; never on the CPU;
- ``auto_micro_batch``: on CUDA, fold accumulation into a bigger micro-batch while the
  estimate fits (same effective batch), never on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BNB_OPTIMIZERS = ("paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit")
BIG_MODEL_PARAMS = 3_000_000_000  # from here on 'auto' picks the paged 8-bit optimizer (memory first)
MEMORY_HEADROOM = 0.90  # share of a GPU's memory a plan may fill (allocator fragmentation, spikes)


@dataclass
class TrainPlan:
    """What this machine will actually do for a config."""

    device: str  # "cuda" or "cpu"
    precision: str  # "bf16", "fp16" or "fp32"
    compute_dtype: str  # compute dtype of quantized layers
    optimizer: str
    gradient_checkpointing: bool
    micro_batch: int
    grad_accum: int
    world_size: int = 1
    compile: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum * self.world_size


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(requested: str, *, cuda: bool, cuda_bf16: bool, cpu_bf16: bool) -> tuple[str, str | None]:
    """The precision to train in and a notice when it is not what was asked."""
    if cuda:
        if requested in ("auto", "bf16") and cuda_bf16:
            return "bf16", None
        if requested == "bf16":
            return "fp16", "this GPU has no bf16: training in fp16 with loss scaling instead"
        return ("fp16" if requested in ("auto", "fp16") else "fp32"), None
    if requested == "fp32":
        return "fp32", None
    if requested in ("auto", "bf16") and cpu_bf16:
        return "bf16", None
    why = ("fp16 on the CPU is slow and unsupported by most kernels" if requested == "fp16"
           else "this CPU has no native bf16 (AVX512-BF16/AMX), so bf16 would be emulated and many times slower")
    return "fp32", f"precision {requested} asked, training in fp32 on the CPU: {why}"


def resolve_compute_dtype(requested: str, precision: str, *, cuda: bool) -> str:
    """Compute dtype of 4-bit layers (and dtype of the other frozen weights) for the chosen precision.

    fp32 on the CPU when the run is fp32 there; fp16 where bf16 was asked but the GPU lacks it.
    """
    if not cuda and precision == "fp32":
        return "float32"
    if precision == "fp16" and requested == "bfloat16":
        return "float16"
    return requested


def resolve_optimizer(requested: str, *, cuda: bool, base_params: int | None = None) -> tuple[str, str | None]:
    """The optimizer to use and a notice when it had to change.

    ``base_params`` (the base model's size, when known) decides 'auto' on a GPU; unknown
    counts as big (the seed's optimizer).
    """
    if requested == "auto":
        if not cuda:
            return "adamw_torch", None
        small = base_params is not None and base_params < BIG_MODEL_PARAMS
        return ("adamw_torch_fused" if small else "paged_adamw_8bit"), None
    if requested in BNB_OPTIMIZERS and not cuda:
        return "adamw_torch", (f"optimizer {requested} needs CUDA (bitsandbytes); using adamw_torch on the CPU "
                               "(32-bit states: more memory, same update rule)")
    return requested, None


def resolve_compile(requested: str, *, cuda: bool, checkpointing: bool,
                    base_params: int | None = None) -> tuple[bool, str | None]:
    """Whether to compile the decoder layers, and a notice when 'on' could not be honoured."""
    if requested == "off":
        return False, None
    if requested == "auto" and (base_params is None or base_params < BIG_MODEL_PARAMS):
        return False, None
    if not cuda:
        return False, ("train.compile = on asks for torch.compile, which carexpert only uses on a GPU "
                       "(on the CPU the compiler's C++ build takes longer than it saves): not compiled"
                       if requested == "on" else None)
    if checkpointing:
        return False, ("train.compile = on, but gradient checkpointing is on and the two were never measured "
                       "together: not compiled" if requested == "on" else None)
    return True, None


def fold_accumulation(batch_size: int, grad_accum: int, fits: Callable[[int], bool]) -> tuple[int, int]:
    """The biggest micro-batch ``batch_size * d`` (d divides ``grad_accum``) that ``fits``.

    The effective batch ``micro * accum`` never changes, so the optimizer sees the same
    updates; fewer, bigger micro-batches keep a GPU busier.
    """
    for d in sorted((d for d in range(1, grad_accum + 1) if grad_accum % d == 0), reverse=True):
        if d == 1 or fits(batch_size * d):
            return batch_size * d, grad_accum // d
    return batch_size, grad_accum


def make_plan(config, *, cuda: bool, cuda_bf16: bool = False, cpu_bf16: bool | None = None,
              world_size: int = 1, peak_bytes: Callable[[int, bool], int] | None = None,
              gpu_memory: int | None = None, base_params: int | None = None) -> TrainPlan:
    """Decide everything hardware-dependent for ``config``.

    ``peak_bytes(micro_batch, checkpointing)`` estimates one GPU's peak memory (see
    ``carexpert.estimate``); ``gpu_memory`` is that GPU's total. Without them (no
    model shape known), the config's own batch and checkpointing are kept.
    ``base_params`` is the base model's parameter count, when known.
    """
    train = config.train
    notices: list[str] = []
    precision, note = resolve_precision(train.precision, cuda=cuda, cuda_bf16=cuda_bf16,
                                        cpu_bf16=cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16)
    notices += [note] if note else []
    optimizer, note = resolve_optimizer(train.optimizer, cuda=cuda, base_params=base_params)
    notices += [note] if note else []
    compute_dtype = resolve_compute_dtype(config.model.compute_dtype, precision, cuda=cuda)

    measure = peak_bytes if cuda and gpu_memory else None  # one GPU's peak for (micro_batch, checkpointing)
    budget = int((gpu_memory or 0) * MEMORY_HEADROOM)
    if train.gradient_checkpointing == "auto":
        checkpointing = bool(measure is not None and measure(train.batch_size, False) > budget)
        if checkpointing:
            notices.append("gradient checkpointing turned on: the activations would not fit this GPU without it")
    else:
        checkpointing = train.gradient_checkpointing == "on"

    micro, accum = train.batch_size, train.grad_accum
    if train.auto_micro_batch and measure is not None:
        micro, accum = fold_accumulation(micro, accum, lambda m: measure(m, checkpointing) <= budget)
        if micro != train.batch_size:
            notices.append(f"auto_micro_batch: micro-batch {train.batch_size} x {train.grad_accum} accumulation "
                           f"→ {micro} x {accum} (same effective batch, fewer and fuller GPU passes)")
    compiled, note = resolve_compile(train.compile, cuda=cuda, checkpointing=checkpointing, base_params=base_params)
    notices += [note] if note else []
    return TrainPlan("cuda" if cuda else "cpu", precision, compute_dtype, optimizer, checkpointing, micro, accum,
                     world_size=world_size, compile=compiled, notices=notices)
