"""Live GPU and host readings for the app's panels and ``carexpert check``.

NVML (``pynvml`` from nvidia-ml-py) answers in well under a millisecond per GPU and
needs no CUDA context, so ``gpu_snapshot`` is safe to call from a thread every second
while a training process owns the GPU. Nothing here imports torch.
"""

from __future__ import annotations

import threading
from typing import Any

_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"tried": False, "ok": False, "error": None}


def nvml_available() -> bool:
    """Initialise NVML once per process; False where there is no NVIDIA driver."""
    with _nvml_lock:
        if not _nvml_state["tried"]:
            _nvml_state["tried"] = True
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml_state["ok"] = True
            except Exception as error:  # noqa: BLE001 - no library, no driver, no permission: no readings
                _nvml_state["error"] = str(error) or type(error).__name__
        return bool(_nvml_state["ok"])


def nvml_error() -> str | None:
    """Why NVML is unavailable (after ``nvml_available`` returned False)."""
    return _nvml_state["error"]


def driver_versions() -> dict[str, str | None]:
    """NVIDIA driver version and the CUDA version it supports, from NVML (None without a driver)."""
    if not nvml_available():
        return {"driver": None, "cuda_driver": None}
    import pynvml

    driver = _safe(pynvml.nvmlSystemGetDriverVersion)
    driver = _text(driver) if driver is not None else None
    cuda = _safe(pynvml.nvmlSystemGetCudaDriverVersion)
    cuda_text = f"{cuda // 1000}.{(cuda % 1000) // 10}" if isinstance(cuda, int) else None
    return {"driver": driver, "cuda_driver": cuda_text}


def gpu_snapshot() -> list[dict[str, Any]]:
    """One dict per GPU: index, name, mem_used, mem_total (bytes), util (%), temp (°C), power (W),
    processes ([{pid, name, mem_used}]). Fields NVML cannot read are None; [] without a driver."""
    if not nvml_available():
        return []
    import pynvml

    count = _safe(pynvml.nvmlDeviceGetCount) or 0
    readings = []
    for index in range(count):
        handle = _safe(pynvml.nvmlDeviceGetHandleByIndex, index)
        if handle is None:
            continue
        memory = _safe(pynvml.nvmlDeviceGetMemoryInfo, handle)
        util = _safe(pynvml.nvmlDeviceGetUtilizationRates, handle)
        power = _safe(pynvml.nvmlDeviceGetPowerUsage, handle)  # milliwatts
        name = _safe(pynvml.nvmlDeviceGetName, handle)
        readings.append({
            "index": index,
            "name": _text(name) if name is not None else None,
            "mem_used": getattr(memory, "used", None),
            "mem_total": getattr(memory, "total", None),
            "util": getattr(util, "gpu", None),
            "temp": _safe(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
            "power": power / 1000.0 if isinstance(power, (int, float)) else None,
            "processes": _processes(pynvml, handle),
        })
    return readings


def host_snapshot() -> dict[str, Any]:
    """RAM (bytes) and CPU load of this machine: ram_used, ram_total, cpu_percent, cpu_count.

    ``cpu_percent`` is the load since the previous call (0.0 on the very first call).
    """
    import psutil

    memory = psutil.virtual_memory()
    return {
        "ram_used": memory.total - memory.available,
        "ram_total": memory.total,
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count(logical=True),
    }


def _processes(pynvml: Any, handle: Any) -> list[dict[str, Any]]:
    procs = _safe(pynvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
    result = []
    for proc in procs:
        used = getattr(proc, "usedGpuMemory", None)
        result.append({"pid": proc.pid, "name": _process_name(proc.pid),
                       "mem_used": used if isinstance(used, int) and used >= 0 else None})
    return result


def _process_name(pid: int) -> str | None:
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:  # noqa: BLE001 - gone, or another container's pid: no name
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe(call: Any, *args: Any) -> Any:
    """NVML call result, or None when this GPU or driver does not support it."""
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and friends: no reading
        return None
