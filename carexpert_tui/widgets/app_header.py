"""The one-line header: which model, which run, and how the GPUs are doing."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from carexpert.config import Config
from carexpert_tui.formatting import gib
from carexpert_tui.run_rows import RunRow


def model_label(config: Config) -> str:
    model = config.model.base_model
    short = model.rstrip("/").rsplit("/", 1)[-1] if "/" in model else model
    return f"{short} · {config.model.quantization}"


def run_label(run_id: str | None, runs: tuple[RunRow, ...]) -> str:
    if not run_id:
        return "no run"
    row = next((r for r in runs if r.run_id == run_id), None)
    if row is None:
        return run_id
    return f"{run_id} {row.state} {row.progress_text()}"


def gpu_label(gpus: list[dict[str, Any]], host: dict[str, Any]) -> str:
    if not gpus:
        if host.get("ram_total"):
            return f"no GPU · RAM {gib(host.get('ram_used', 0))}/{gib(host['ram_total'])}"
        return "no GPU"
    used = sum(g.get("mem_used") or 0 for g in gpus)
    total = sum(g.get("mem_total") or 0 for g in gpus)
    utils = [g.get("util") for g in gpus if g.get("util") is not None]
    util = f" {sum(utils) / len(utils):.0f}%" if utils else ""
    return f"{len(gpus)} GPU {gib(used)}/{gib(total)}{util}"


class AppHeader(Static):
    """Model · run · GPUs, refreshed whenever the app's shared state changes."""

    DEFAULT_CSS = """
    AppHeader {
        dock: top;
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    shown: Text | None = None

    def on_mount(self) -> None:
        for name in ("config", "runs", "gpus", "current_run"):
            self.watch(self.app, name, self._changed, init=False)
        self._changed()

    def _changed(self, _value: object = None) -> None:
        app = self.app
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("carexpert", style="bold")
        text.append("  │ ", style="dim")
        text.append(model_label(app.config))
        text.append("  │ ", style="dim")
        text.append(run_label(app.current_run, app.runs))
        text.append("  │ ", style="dim")
        text.append(gpu_label(app.gpus, app.host))
        if text != self.shown:  # GPU readings come every few seconds, mostly unchanged: no redraw then
            self.shown = text
            self.update(text)
