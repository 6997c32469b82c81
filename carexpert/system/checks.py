"""``carexpert check``: can this machine train and run the configured model?

Each check is pass, warn (works, but slower or with a caveat) or fail (something the
user must fix first), with a one-line fix. The facts come from ``probe_environment``,
so the rules here run the same on a faked machine in tests.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.system.compat import compatibility_problems
from carexpert.system.probe import Environment, probe_environment

GIB = 1024 ** 3
REQUIRED = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate", "safetensors",
            "tokenizers", "nvidia-ml-py", "psutil")
KEY_PACKAGES = 6  # shown by name and version; the rest counted
MIN_RAM_GIB = 4
MIN_DISK_GIB, LOW_DISK_GIB = 1, 5


@dataclass(frozen=True)
class CheckResult:
    """One line of ``carexpert check``."""

    name: str
    status: str  # "pass" | "warn" | "fail"
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def run_checks(config: Config, env: Environment | None = None) -> list[CheckResult]:
    """Every check, in the order ``carexpert check`` lists them (imports torch; a few seconds)."""
    env = env or probe_environment()
    results = [check_python(env), check_packages(env), check_torch(env), *check_gpus(env),
               check_bitsandbytes(env, config), check_ram(), check_disk(config.train.runs_dir),
               check_model(config), check_tensorboard(config), check_config_fits(config, env)]
    return results


def summarize(results: list[CheckResult]) -> dict[str, int]:
    counts = {"pass": 0, "warn": 0, "fail": 0}
    for result in results:
        counts[result.status] += 1
    return counts


def check_python(env: Environment) -> CheckResult:
    major_minor = tuple(int(p) for p in env.python.split(".")[:2])
    if major_minor >= (3, 11):
        return CheckResult("python", "pass", f"Python {env.python}")
    return CheckResult("python", "fail", f"Python {env.python}; carexpert needs 3.11 or newer",
                       "install Python 3.11+ and reinstall carexpert in it")


def check_packages(env: Environment) -> CheckResult:
    missing = [name for name in REQUIRED if not env.packages.get(name)]
    installed = [f"{name} {version}" for name, version in env.packages.items() if version]
    shown = ", ".join(installed[:KEY_PACKAGES]) + (f" (+{len(installed) - KEY_PACKAGES} more)"
                                                    if len(installed) > KEY_PACKAGES else "")
    if missing:
        return CheckResult("packages", "fail", f"missing: {', '.join(missing)}; installed: {shown}",
                           f"pip install {' '.join(missing)}")
    return CheckResult("packages", "pass", shown)


def check_torch(env: Environment) -> CheckResult:
    if env.torch_version is None:
        return CheckResult("torch", "fail", env.cuda_error or "torch is not installed", "pip install torch")
    if env.torch_cuda is None:
        if env.nvml_gpu_count:
            return CheckResult("torch", "warn", f"torch {env.torch_version} is a CPU-only build, but this machine "
                               f"has {env.nvml_gpu_count} NVIDIA GPU(s)",
                               "install the CUDA build: pip install --force-reinstall torch (from PyPI)")
        return CheckResult("torch", "pass", f"torch {env.torch_version}, CPU build")
    detail = f"torch {env.torch_version}, built for CUDA {env.torch_cuda}"
    if not env.cuda_available and env.nvml_gpu_count:
        return CheckResult("torch", "fail", f"{detail}, but CUDA does not work: {env.cuda_error}",
                           f"update the NVIDIA driver (it supports CUDA {env.cuda_driver or '?'}) or install a "
                           "torch build for an older CUDA")
    return CheckResult("torch", "pass", detail)


def check_gpus(env: Environment) -> list[CheckResult]:
    driver = f"driver {env.driver}, CUDA {env.cuda_driver}" if env.driver else "no NVIDIA driver (NVML)"
    if not env.gpus:
        return [CheckResult("gpu", "warn", f"no usable GPU ({driver}): training and chat run on the CPU",
                            "fine for the embedded 270M model; use a CUDA GPU for 7B models")]
    results = []
    for gpu in env.gpus:
        memory = (f"{gpu.free_bytes / GIB:.1f}/{gpu.total_bytes / GIB:.1f} GiB free"
                  if gpu.free_bytes is not None and gpu.total_bytes else
                  f"{(gpu.total_bytes or 0) / GIB:.1f} GiB")
        cc = f"{gpu.capability[0]}.{gpu.capability[1]}" if gpu.capability else "?"
        detail = f"{gpu.name}, {memory}, compute {cc}, bf16 {'yes' if gpu.bf16 else 'no'}, {driver}"
        if not gpu.bf16:
            results.append(CheckResult(f"gpu{gpu.index}", "warn", detail,
                                       "this card has no bfloat16: use train.precision = \"fp16\" and "
                                       "model.compute_dtype = \"float16\""))
        else:
            results.append(CheckResult(f"gpu{gpu.index}", "pass", detail))
    return results


def check_bitsandbytes(env: Environment, config: Config) -> CheckResult:
    uses_4bit = config.model.quantization in ("nf4", "fp4")
    if env.bnb_4bit_ok:
        return CheckResult("bitsandbytes 4-bit", "pass",
                           f"bitsandbytes {env.bnb_version}: NF4 quantize + matmul works on {env.bnb_device}")
    status = "fail" if uses_4bit else "warn"
    return CheckResult("bitsandbytes 4-bit", status,
                       f"4-bit does not work on {env.bnb_device}: {env.bnb_4bit_error}",
                       "pip install -U bitsandbytes (>= 0.48 for CPU 4-bit), or set model.quantization = \"none\"")


def check_ram() -> CheckResult:
    import psutil

    memory = psutil.virtual_memory()
    detail = f"{memory.available / GIB:.1f} GiB available of {memory.total / GIB:.1f} GiB"
    if memory.available < MIN_RAM_GIB * GIB:
        return CheckResult("ram", "warn", detail, "close other programs; loading a model needs a few GiB of RAM")
    return CheckResult("ram", "pass", detail)


def check_disk(runs_dir: str) -> CheckResult:
    folder = Path(runs_dir).expanduser().absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    detail = f"{free / GIB:.1f} GiB free at {folder}"
    if free < MIN_DISK_GIB * GIB:
        return CheckResult("disk", "fail", detail, "free disk space or set train.runs_dir to a bigger disk")
    if free < LOW_DISK_GIB * GIB:
        return CheckResult("disk", "warn", detail, "checkpoints of a 7B adapter take ~1 GiB each; free some space")
    return CheckResult("disk", "pass", detail)


def check_model(config: Config) -> CheckResult:
    from carexpert.modeling.embedded import (
        embedded_package_available,
        is_complete,
        missing_package_error,
    )
    from carexpert.modeling.resolve import EMBEDDED, hub_cached, resolve_model

    name = config.model.base_model
    try:
        resolved = resolve_model(config.model)
    except UserError as error:
        return CheckResult("model", "fail", error.message, error.fix)
    if resolved.kind == EMBEDDED:
        if not embedded_package_available():
            missing = missing_package_error()
            return CheckResult("model", "fail", missing.message, missing.fix)
        if is_complete(resolved.location):
            return CheckResult("model", "pass", f"embedded Gemma 3 270M, converted at {resolved.location}")
        return CheckResult("model", "pass", "embedded Gemma 3 270M; not converted yet: the first use converts "
                           f"it once into {resolved.location} (about a minute)")
    if resolved.kind == "hub":
        if resolved.local_only:
            return CheckResult("model", "pass", f"{name} from the local Hugging Face cache (hub not reachable)")
        if hub_cached(name, resolved.revision):
            return CheckResult("model", "pass", f"{name} (in the local Hugging Face cache)")
        return CheckResult("model", "warn", f"{name} is not in the local Hugging Face cache; the first load "
                           "downloads it", "download it ahead: huggingface-cli download " + name)
    return CheckResult("model", "pass", f"{resolved.kind}: {resolved.label}")


def check_tensorboard(config: Config) -> CheckResult:
    if importlib.util.find_spec("tensorboard") is not None:
        return CheckResult("tensorboard", "pass", "tensorboard is installed (runs log to runs/<id>/tensorboard)")
    status = "warn" if config.train.tensorboard else "pass"
    return CheckResult("tensorboard", status, "tensorboard is not installed",
                       "pip install tensorboard, or set train.tensorboard = false")


def check_config_fits(config: Config, env: Environment) -> CheckResult:
    problems = compatibility_problems(config, env)
    if problems:
        return CheckResult("config", "fail", "; ".join(problems),
                           "change those settings ('carexpert config set KEY=VALUE')")
    return CheckResult("config", "pass", "every setting can work on this machine")
