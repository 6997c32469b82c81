"""Memory of a training run, one row per GPU: a bar of reserved/total and allocated, reserved and
peak bytes (from the run's step events, where every rank reports its GPU), the card's total (from
NVML). With one GPU there is room for a sparkline of its memory over recent steps; with several,
each GPU keeps to its row so four fit the 80x24 minimum. A run on the CPU shows the trainer's RAM."""

from __future__ import annotations

from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, Sparkline

from carexpert_tui.formatting import gib
from carexpert_tui.widgets.memory_bar import MemoryBar

HISTORY = 120
EMPTY = "No memory readings yet: they come with the run's step events."
COLUMNS = "{:>6} {:>8} {:>6} / {:>6}"  # allocated, reserved, peak / total: " 28.1G    30.2G  31.0G /  80.0G"
FIGURES_HEADER = COLUMNS.format("alloc", "reserved", "peak", "total")
FIGURES_WIDTH = len(FIGURES_HEADER)
BAR_CELLS = 10  # reserved of the card's total; with the name and figures, a row fits the 80x24 minimum


def gpu_figures(allocated: Any, reserved: Any, peak: Any, total: Any) -> str:
    """The figures column of one GPU's row, aligned with ``FIGURES_HEADER``."""
    return COLUMNS.format(gib(allocated), gib(reserved), gib(peak), gib(total) if total else "?")


def gpu_key(gpu: dict[str, Any]) -> tuple[str, str]:
    """The card key and the short name of a step event's GPU entry.

    Entries carry the rank when the trainer knows it: on several hosts two ranks can
    both use their host's GPU 0, so the rank keeps them apart.
    """
    index, rank = gpu.get("index", 0), gpu.get("rank")
    if rank is None or rank == index:
        return f"gpu{index}", str(index)
    return f"rank{rank}", f"r{rank}"


class DeviceMemory(Vertical):
    """One GPU (or the host): its row, and a sparkline of its memory when the panel has room."""

    DEFAULT_CSS = f"""
    DeviceMemory {{
        height: auto;
        & > .row {{ height: 1; }}
        & .name {{ width: 4; text-style: bold; }}
        & MemoryBar {{ margin-right: 1; }}
        & .figures {{ width: 1fr; min-width: {FIGURES_WIDTH}; text-align: right; color: $text-muted; }}
        & Sparkline {{ height: 2; width: 1fr; margin-bottom: 1; }}
        & Sparkline > .sparkline--max-color {{ color: $vram-used; }}
        & Sparkline > .sparkline--min-color {{ color: $vram-used 50%; }}
        &.-host .figures {{ width: 1fr; text-align: left; }}
        &.-host MemoryBar {{ display: none; }}
    }}
    """

    def __init__(self, name: str, key: str, *, host: bool = False):
        super().__init__(classes="-host" if host else "")
        self.card_name = name
        self.key = key
        self.history: deque[float] = deque(maxlen=HISTORY)
        self._latest: tuple[str, float | None, str] | None = None
        self._ready = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label(self.card_name, classes="name")
            yield MemoryBar(BAR_CELLS)
            yield Label(classes="figures")
        yield Sparkline([], summary_function=max)

    def on_mount(self) -> None:
        self._ready = True
        self._apply()

    def show(self, figures: str, used: float, total: float | None, tooltip: str = "") -> None:
        """Record a reading; drawn now, or as soon as the card is mounted."""
        self.history.append(used)
        self._latest = (figures, total, tooltip)
        if self._ready:
            self._apply()

    def _apply(self) -> None:
        if self._latest is None or not self.is_attached or not self.query(".figures"):
            return  # a card being removed (the panel was cleared) has nothing left to draw into
        figures, total, tooltip = self._latest
        used = self.history[-1]
        self.query_one(".figures", Label).update(figures)
        self.query_one(MemoryBar).show(used, total or used or 1)
        self.query_one(Sparkline).data = list(self.history)
        self.tooltip = tooltip or None


class VramPanel(VerticalScroll):
    """Per-GPU memory of the followed run; ``update_from_step`` takes a step event."""

    DEFAULT_CSS = f"""
    VramPanel {{ height: 1fr; padding: 0 1; }}
    VramPanel > .empty {{ color: $text-muted; }}
    VramPanel > .header {{ height: 1; color: $text-muted; }}
    VramPanel > .header > .name {{ width: 4; }}
    VramPanel > .header > .bar {{ width: {BAR_CELLS + 1}; }}
    VramPanel > .header > .figures {{ width: 1fr; min-width: {FIGURES_WIDTH}; text-align: right; }}
    VramPanel.-several Sparkline {{ display: none; }}
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.cards: dict[str, DeviceMemory] = {}

    def compose(self) -> ComposeResult:
        yield Label(EMPTY, classes="empty")

    def clear(self) -> None:
        self.cards = {}
        self.remove_class("-several")
        self.remove_children()
        self.mount(Label(EMPTY, classes="empty"))

    def device(self, key: str, name: str, *, host: bool = False) -> DeviceMemory:
        if key not in self.cards:
            self.query_children(".empty").remove()
            if not host and not self.query_children(".header"):
                self.mount(Horizontal(Label("GPU", classes="name"), Label("VRAM", classes="bar"),
                                      Label(FIGURES_HEADER, classes="figures"), classes="header"))
            self.cards[key] = DeviceMemory(name, key, host=host)
            self.mount(self.cards[key])
            self.set_class(len(self.cards) > 1, "-several")
        return self.cards[key]

    def update_from_step(self, event: dict[str, Any], nvml: list[dict[str, Any]]) -> None:
        totals = {g.get("index"): g.get("mem_total") for g in nvml}
        gpus = event.get("gpus") or []
        for gpu in gpus:
            key, name = gpu_key(gpu)
            index = gpu.get("index", 0)
            total = totals.get(index) if key.startswith("gpu") else None  # NVML sees this host only
            allocated, reserved, peak = gpu.get("allocated"), gpu.get("reserved"), gpu.get("peak")
            where = f"rank {gpu['rank']}, " if gpu.get("rank") is not None else ""
            tooltip = (f"GPU {index} ({where}this run): allocated {gib(allocated)}, reserved {gib(reserved)}, "
                       f"peak allocated {gib(peak)}" + (f", card total {gib(total)}" if total else ""))
            card = self.device(key, name)
            card.show(gpu_figures(allocated, reserved, peak, total), float(reserved or allocated or 0), total,
                      tooltip)
        if not gpus and event.get("ram_bytes") is not None:
            card = self.device("host", "CPU", host=True)
            ram = float(event["ram_bytes"])
            card.show(f"CPU run · trainer RAM {gib(ram)}", ram, None)
