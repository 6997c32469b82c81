"""A card per GPU (live VRAM bar, utilisation, temperature, power, processes), or the host's RAM/CPU.

Cards sit side by side, which suits one or two GPUs; a server with more gets ``GpuRows``, one
line per GPU (its processes in the row's tooltip), so every GPU shows even at 80x24."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static

from carexpert_tui.formatting import gib
from carexpert_tui.widgets.memory_bar import MemoryBar


def _value(reading: dict[str, Any], key: str, unit: str, digits: int = 0) -> str:
    value = reading.get(key)
    return "?" if value is None else f"{value:.{digits}f}{unit}"


def process_lines(processes: list[Any], limit: int = 3) -> str:
    """"pid 4242 python 11.2G" lines for the heaviest processes on a GPU."""
    rows = []
    for proc in processes or []:
        if isinstance(proc, dict):
            rows.append((proc.get("mem_used") or 0, proc.get("pid", "?"), proc.get("name") or ""))
    rows.sort(reverse=True)
    lines = [f"pid {pid} {name[:18]} {gib(mem)}".replace("  ", " ") for mem, pid, name in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"+{len(rows) - limit} more")
    return "\n".join(lines) if lines else "no processes"


class GpuCard(Vertical):
    """One GPU's live state; ``show`` replaces the reading."""

    DEFAULT_CSS = """
    GpuCard {
        width: 1fr; min-width: 36; height: auto;
        border: round $primary 60%; padding: 0 1;
        & > .title { text-style: bold; width: 1fr; }
        & > .figures { color: $text-muted; }
        & > .processes { color: $text-muted; height: auto; }
        & MemoryBar { width: 1fr; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Label(classes="title")
        yield MemoryBar(cells=None)
        yield Label(classes="figures")
        yield Static(classes="processes")

    def show(self, reading: dict[str, Any]) -> None:
        name = reading.get("name") or "GPU"
        self.query_one(".title", Label).update(f"GPU {reading.get('index', '?')} · {name}")
        used, total = reading.get("mem_used") or 0, reading.get("mem_total") or 0
        self.query_one(MemoryBar).show(used, total)
        self.border_title = f"VRAM {gib(used)}/{gib(total)}"
        self.query_one(".figures", Label).update(
            f"util {_value(reading, 'util', '%')} · {_value(reading, 'temp', '°C')} · "
            f"{_value(reading, 'power', ' W')}")
        self.query_one(".processes", Static).update(process_lines(reading.get("processes", [])))


class HostCard(Vertical):
    """RAM and CPU of a machine without a GPU (or with NVML unavailable)."""

    DEFAULT_CSS = """
    HostCard {
        width: 1fr; height: auto; border: round $secondary; padding: 0 1;
        & > .title { text-style: bold; }
        & > .figures { color: $text-muted; }
        & MemoryBar { width: 1fr; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("No GPU found — host memory and CPU", classes="title")
        yield MemoryBar(cells=None)
        yield Label(classes="figures")

    def show(self, host: dict[str, Any]) -> None:
        used, total = host.get("ram_used") or 0, host.get("ram_total") or 0
        self.query_one(MemoryBar).show(used, total)
        self.border_title = f"RAM {gib(used)}/{gib(total)}"
        cpus = host.get("cpu_count")
        self.query_one(".figures", Label).update(
            f"CPU {_value(host, 'cpu_percent', '%')}" + (f" of {cpus} cores" if cpus else ""))


class GpuRow(Horizontal):
    """One GPU on one line: name, VRAM bar, used/total, utilisation, temperature, power."""

    DEFAULT_CSS = """
    GpuRow {
        height: 1;
        & > .name { width: 20; text-style: bold; }
        & > MemoryBar { margin: 0 1 0 0; }
        & > .figures { width: 1fr; color: $text-muted; text-align: right; }
    }
    """

    reading: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Label(classes="name")
        yield MemoryBar()
        yield Label(classes="figures")

    def on_mount(self) -> None:
        if self.reading is not None:
            self.show(self.reading)

    def show(self, reading: dict[str, Any]) -> None:
        """Draw a reading now, or as soon as the row is mounted."""
        self.reading = reading
        if not self.query(".name"):
            return
        name = (reading.get("name") or "GPU").removeprefix("NVIDIA ")
        self.query_one(".name", Label).update(f"{reading.get('index', '?')} {name}"[:19])
        used, total = reading.get("mem_used") or 0, reading.get("mem_total") or 0
        self.query_one(MemoryBar).show(used, total)
        self.query_one(".figures", Label).update(
            f"{gib(used)}/{gib(total)} {_value(reading, 'util', '%'):>4} {_value(reading, 'temp', '°C'):>4} "
            f"{_value(reading, 'power', 'W'):>5}")
        self.tooltip = f"GPU {reading.get('index', '?')} · {reading.get('name') or 'GPU'}\n" + process_lines(
            reading.get("processes", []), limit=8)


class GpuRows(Vertical):
    """Every GPU of a server with many, one ``GpuRow`` each, in one bordered box."""

    DEFAULT_CSS = """
    GpuRows { width: 1fr; height: auto; border: round $primary 60%; padding: 0 1; }
    """

    def show(self, gpus: list[dict[str, Any]]) -> None:
        rows = list(self.query_children(GpuRow))
        if len(rows) != len(gpus):
            self.remove_children()
            self.mount_all([GpuRow() for _ in gpus])
            self.call_after_refresh(self.show, gpus)
            return
        for row, reading in zip(rows, gpus):
            row.show(reading)
        used = sum(g.get("mem_used") or 0 for g in gpus)
        total = sum(g.get("mem_total") or 0 for g in gpus)
        self.border_title = f"{len(gpus)} GPUs · VRAM {gib(used)}/{gib(total)}"
