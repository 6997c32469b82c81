"""Memory of a training run per GPU: allocated, reserved and peak (from the run's events),
the card's total (from NVML), and a sparkline of allocated memory over recent steps.
A run on the CPU shows the trainer's RAM instead."""

from __future__ import annotations

from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, ProgressBar, Sparkline

from carexpert_tui.formatting import gib

HISTORY = 120
EMPTY = "No memory readings yet: they come with the run's step events."


class DeviceMemory(Vertical):
    """One GPU (or the host): figures, a bar of reserved/total and an allocation sparkline."""

    DEFAULT_CSS = """
    DeviceMemory {
        height: auto;
        margin-bottom: 1;
        & > Label { width: 1fr; }
        & Bar { width: 1fr; }
        & Bar > .bar--bar { color: $vram-used; }
        & Sparkline { height: 2; width: 1fr; }
        & Sparkline > .sparkline--max-color { color: $vram-used; }
        & Sparkline > .sparkline--min-color { color: $vram-used 50%; }
    }
    """

    def __init__(self, title: str, key: str):
        super().__init__()
        self.card_title = title
        self.key = key
        self.history: deque[float] = deque(maxlen=HISTORY)
        self._latest: tuple[str, float | None] | None = None
        self._ready = False

    def compose(self) -> ComposeResult:
        yield Label(self.card_title)
        yield ProgressBar(total=1, show_eta=False, show_percentage=True)
        yield Sparkline([], summary_function=max)

    def on_mount(self) -> None:
        self._ready = True
        self._apply()

    def show(self, text: str, used: float, total: float | None) -> None:
        """Record a reading; drawn now, or as soon as the card is mounted."""
        self.history.append(used)
        self._latest = (text, total)
        if self._ready:
            self._apply()

    def _apply(self) -> None:
        if self._latest is None or not self.is_attached or not self.query(Label):
            return  # a card being removed (the panel was cleared) has nothing left to draw into
        text, total = self._latest
        used = self.history[-1]
        self.query_one(Label).update(text)
        self.query_one(ProgressBar).update(total=max(total or used or 1, 1), progress=used)
        self.query_one(Sparkline).data = list(self.history)


class VramPanel(VerticalScroll):
    """Per-GPU memory of the followed run; ``update_from_step`` takes a step event."""

    DEFAULT_CSS = """
    VramPanel { height: 1fr; padding: 0 1; }
    VramPanel > .empty { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.cards: dict[str, DeviceMemory] = {}

    def compose(self) -> ComposeResult:
        yield Label(EMPTY, classes="empty")

    def clear(self) -> None:
        self.cards = {}
        self.remove_children()
        self.mount(Label(EMPTY, classes="empty"))

    def device(self, key: str, title: str) -> DeviceMemory:
        if key not in self.cards:
            self.query_children(".empty").remove()
            self.cards[key] = DeviceMemory(title, key)
            self.mount(self.cards[key])
        return self.cards[key]

    def update_from_step(self, event: dict[str, Any], nvml: list[dict[str, Any]]) -> None:
        totals = {g.get("index"): g.get("mem_total") for g in nvml}
        gpus = event.get("gpus") or []
        for gpu in gpus:
            index = gpu.get("index", 0)
            total = totals.get(index)
            allocated, reserved, peak = gpu.get("allocated"), gpu.get("reserved"), gpu.get("peak")
            text = (f"GPU {index}  alloc {gib(allocated)} · reserved {gib(reserved)} · peak {gib(peak)}"
                    + (f" / {gib(total)}" if total else ""))
            card = self.device(f"gpu{index}", f"GPU {index}")
            card.show(text, float(reserved or allocated or 0), total)
        if not gpus and event.get("ram_bytes") is not None:
            card = self.device("host", "CPU run")
            ram = float(event["ram_bytes"])
            card.show(f"CPU run · trainer RAM {gib(ram)}", ram, None)
