"""System checks and compatibility rules on faked machines; telemetry without torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types

import pytest

from carexpert.config import Config
from carexpert.system import (
    CheckResult,
    Environment,
    GpuInfo,
    bnb_4bit_probe,
    compatibility_problems,
    host_snapshot,
    run_checks,
    summarize,
    telemetry,
)
from carexpert.system.checks import (
    REQUIRED,
    check_disk,
    check_gpus,
    check_packages,
    check_torch,
)

GIB = 1024 ** 3
A100 = GpuInfo(0, "NVIDIA A100-SXM4-80GB", 80 * GIB, 70 * GIB, (8, 0), True)
V100 = GpuInfo(1, "Tesla V100-SXM2-16GB", 16 * GIB, 15 * GIB, (7, 0), False)
PACKAGES = {name: "1.0" for name in REQUIRED}


def machine(**overrides) -> Environment:
    """A healthy CPU-only machine unless told otherwise."""
    base = Environment(python="3.11.7", torch_version="2.13.0+cpu", torch_cuda=None, bnb_version="0.50.2",
                       bnb_device="cpu", bnb_4bit_error=None, packages=dict(PACKAGES))
    return dataclasses.replace(base, **overrides)


def gpu_machine(*gpus: GpuInfo, **overrides) -> Environment:
    return machine(torch_version="2.13.0+cu128", torch_cuda="12.8", cuda_available=True, gpus=gpus,
                   nvml_gpu_count=len(gpus), driver="570.86", cuda_driver="12.8", bnb_device="cuda", **overrides)


# --- compatibility rules ------------------------------------------------------------------

def test_healthy_cpu_machine_has_no_problems_even_with_paged_optimizer():
    config = Config()
    config.train.optimizer = "paged_adamw_8bit"  # falls back on the CPU; not an error
    assert compatibility_problems(config, machine()) == []
    config.train.optimizer = "auto"
    assert compatibility_problems(config, machine()) == []


def test_4bit_without_a_working_bitsandbytes_backend_is_a_problem():
    broken = machine(bnb_4bit_error="RuntimeError: no CPU backend")
    qlora = Config()
    qlora.model.quantization = "nf4"
    problems = compatibility_problems(qlora, broken)
    assert len(problems) == 1 and problems[0].startswith("model.quantization = 'nf4'")
    assert "no CPU backend" in problems[0]
    config = Config()
    config.model.quantization = "none"
    assert compatibility_problems(config, broken) == []
    assert compatibility_problems(qlora, machine(bnb_version=None, bnb_4bit_error="not installed"))


def test_bf16_on_a_card_without_bf16_is_a_problem():
    problems = compatibility_problems(Config(), gpu_machine(A100, V100))
    keys = [p.split(" = ")[0] for p in problems]
    assert keys == ["train.precision", "model.compute_dtype"]
    assert all("Tesla V100" in p and "A100" not in p for p in problems)
    config = Config()
    config.train.precision, config.model.compute_dtype = "fp16", "float16"
    assert compatibility_problems(config, gpu_machine(V100)) == []
    assert compatibility_problems(Config(), gpu_machine(A100)) == []


def test_flash_attention_needs_a_gpu_and_the_package():
    config = Config()
    config.model.attn_implementation = "flash_attention_2"
    assert "needs a CUDA GPU" in compatibility_problems(config, machine())[0]
    assert "flash-attn package" in compatibility_problems(config, gpu_machine(A100))[0]
    assert compatibility_problems(config, gpu_machine(A100, flash_attn=True)) == []


# --- checks -------------------------------------------------------------------------------

def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_run_checks_on_a_healthy_cpu_machine(tiny_model_dir, tmp_path):
    config = Config()
    config.model.base_model = str(tiny_model_dir)
    config.train.runs_dir = str(tmp_path / "runs")
    results = run_checks(config, machine())
    assert all(r.status in ("pass", "warn", "fail") and r.detail for r in results)
    checks = by_name(results)
    assert {"python", "packages", "torch", "gpu", "bitsandbytes 4-bit", "ram", "disk", "model", "tensorboard",
            "config"} <= set(checks)
    assert checks["gpu"].status == "warn" and checks["gpu"].fix  # no GPU: works, slowly
    assert checks["torch"].detail == "torch 2.13.0+cpu, CPU build"
    assert checks["model"].status == "pass" and str(tiny_model_dir.name) in checks["model"].detail
    assert summarize(results)["fail"] == 0


def test_broken_4bit_fails_only_when_the_config_uses_it(tiny_model_dir, tmp_path):
    config = Config()
    config.model.base_model = str(tiny_model_dir)
    config.model.quantization = "nf4"
    config.train.runs_dir = str(tmp_path)
    broken = machine(bnb_4bit_error="RuntimeError: no CPU backend")
    checks = by_name(run_checks(config, broken))
    assert checks["bitsandbytes 4-bit"].status == "fail" and checks["config"].status == "fail"
    assert "no CPU backend" in checks["bitsandbytes 4-bit"].detail
    config.model.quantization = "none"
    checks = by_name(run_checks(config, broken))
    assert checks["bitsandbytes 4-bit"].status == "warn" and checks["config"].status == "pass"


def test_missing_model_fails_with_its_fix(tmp_path):
    config = Config()
    config.model.base_model = str(tmp_path / "no-model-here")
    config.train.runs_dir = str(tmp_path)
    model = by_name(run_checks(config, machine()))["model"]
    assert model.status == "fail" and "no-model-here" in model.detail and model.fix


def test_gpu_and_torch_build_checks():
    rows = check_gpus(gpu_machine(A100, V100))
    assert [r.status for r in rows] == ["pass", "warn"]
    assert "A100" in rows[0].detail and "70.0/80.0 GiB free" in rows[0].detail and "compute 8.0" in rows[0].detail
    assert "driver 570.86" in rows[0].detail and "bf16 no" in rows[1].detail
    cpu_torch_with_gpus = machine(nvml_gpu_count=2)
    assert check_torch(cpu_torch_with_gpus).status == "warn"
    dead_cuda = machine(torch_cuda="12.8", nvml_gpu_count=1, cuda_error="driver too old", cuda_driver="11.4")
    result = check_torch(dead_cuda)
    assert result.status == "fail" and "driver too old" in result.detail and "11.4" in result.fix
    assert check_torch(gpu_machine(A100)).detail == "torch 2.13.0+cu128, built for CUDA 12.8"


def test_missing_package_fails_with_install_command():
    packages = dict(PACKAGES, peft=None)
    result = check_packages(machine(packages=packages))
    assert result.status == "fail" and result.fix == "pip install peft"


def test_disk_check_walks_up_to_an_existing_folder(tmp_path):
    result = check_disk(str(tmp_path / "not" / "yet" / "runs"))
    assert result.status in ("pass", "warn") and "GiB free at" in result.detail


# --- probes and telemetry -----------------------------------------------------------------

def test_bnb_4bit_really_works_on_this_cpu():
    assert bnb_4bit_probe("cpu") is None


def test_bnb_probe_reports_a_broken_backend():
    assert bnb_4bit_probe("no-such-device") is not None


def test_host_snapshot_reads_ram_and_cpu():
    host = host_snapshot()
    assert 0 < host["ram_used"] <= host["ram_total"]
    assert host["cpu_count"] >= 1 and 0.0 <= host["cpu_percent"] <= 100.0 * host["cpu_count"]


def test_snapshots_do_not_import_torch():
    code = ("import sys; from carexpert.system import gpu_snapshot, host_snapshot; "
            "gpus = gpu_snapshot(); host_snapshot(); assert isinstance(gpus, list); "
            "print(sorted(m for m in ('torch', 'transformers', 'bitsandbytes', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture
def fake_nvml(monkeypatch):
    """A pynvml stand-in with one 80 GiB GPU running one process (CI has no NVIDIA driver)."""
    fake = types.ModuleType("pynvml")
    fake.NVML_TEMPERATURE_GPU = 0
    fake.nvmlInit = lambda: None
    fake.nvmlDeviceGetCount = lambda: 1
    fake.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    fake.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=30 * GIB, total=80 * GIB)
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=97)
    fake.nvmlDeviceGetTemperature = lambda h, sensor: 61

    def no_power(h):
        raise RuntimeError("not supported")

    fake.nvmlDeviceGetPowerUsage = no_power
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: [types.SimpleNamespace(pid=1, usedGpuMemory=29 * GIB)]
    fake.nvmlSystemGetDriverVersion = lambda: "570.86.15"
    fake.nvmlSystemGetCudaDriverVersion = lambda: 12080
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(telemetry, "_nvml_state", {"tried": False, "ok": False, "error": None})
    return fake


def test_gpu_snapshot_reads_nvml(fake_nvml):
    (gpu,) = telemetry.gpu_snapshot()
    assert gpu["index"] == 0 and gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert (gpu["mem_used"], gpu["mem_total"], gpu["util"], gpu["temp"]) == (30 * GIB, 80 * GIB, 97, 61)
    assert gpu["power"] is None  # unsupported readings are None, not an error
    assert gpu["processes"][0]["pid"] == 1 and gpu["processes"][0]["mem_used"] == 29 * GIB
    assert telemetry.driver_versions() == {"driver": "570.86.15", "cuda_driver": "12.8"}


def test_gpu_snapshot_is_empty_without_a_driver(monkeypatch):
    broken = types.ModuleType("pynvml")

    def fail():
        raise OSError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    monkeypatch.setattr(telemetry, "_nvml_state", {"tried": False, "ok": False, "error": None})
    assert telemetry.gpu_snapshot() == []
    assert "Not Found" in telemetry.nvml_error()
