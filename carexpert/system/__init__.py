"""Environment checks (``carexpert check``), compatibility rules and live GPU/host telemetry.

``gpu_snapshot`` and ``host_snapshot`` never import torch (NVML and psutil only), so the
app can poll them from a thread every second; the checks import torch when they run.
"""

from carexpert.system.checks import CheckResult, run_checks, summarize
from carexpert.system.compat import compatibility_problems
from carexpert.system.probe import (
    Environment,
    GpuInfo,
    bnb_4bit_probe,
    probe_environment,
)
from carexpert.system.telemetry import (
    driver_versions,
    gpu_snapshot,
    host_snapshot,
    nvml_available,
)

__all__ = [
    "CheckResult", "Environment", "GpuInfo", "bnb_4bit_probe", "compatibility_problems", "driver_versions",
    "gpu_snapshot", "host_snapshot", "nvml_available", "probe_environment", "run_checks", "summarize",
]
