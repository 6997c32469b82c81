"""System mode: can this machine train? The checks, then the live GPUs (or RAM/CPU).

The checks import torch, so they run as ``carexpert check --json`` in a child process; the GPU cards (one
row per GPU beyond two) follow the app's NVML reading, which the app refreshes in its own worker every few
seconds.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label

from carexpert_tui.messages import ChecksFinished
from carexpert_tui.screens.base import ModeScreen
from carexpert_tui.tables import fill_table
from carexpert_tui.widgets.gpu_card import GpuCard, GpuRows, HostCard

CARDS_UP_TO = 2  # side-by-side cards fit 80 columns up to two GPUs; more get one row each
CHECK_COLUMNS = (("", "status"), ("Check", "name"), ("Detail", "detail"), ("Fix", "fix"))
STATUS_WIDTH = {"status": 6}
STATUS_STYLE = {"pass": ("✓ pass", "success"), "warn": ("! warn", "warning"), "fail": ("✗ fail", "error")}


def check_field(result: Any, name: str) -> str:
    """A field of a check result, whether it is a dataclass, an object or a dict."""
    value = result.get(name) if isinstance(result, dict) else getattr(result, name, "")
    return "" if value is None else str(value)


class SystemScreen(ModeScreen):
    CSS_PATH = "system.tcss"
    BINDING_GROUP_TITLE = "System"
    BINDINGS = [Binding("r", "rerun_checks", "Re-check", id="rerun-checks",
                        tooltip="Run the environment checks again")]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="checks-box"):
            yield Label("Checking…", id="checks-summary")
            yield DataTable(id="checks", cursor_type="row", zebra_stripes=True)
            yield Label(id="check-fix")
        yield Horizontal(id="devices")

    results: list[Any] = []

    def on_mount(self) -> None:
        fill_table(self.query_one("#checks", DataTable), CHECK_COLUMNS, [], widths=STATUS_WIDTH)
        self.query_one("#checks-box").border_title = "carexpert check"
        self.watch(self.app, "gpus", self.show_devices)
        self.run_checks()

    def palette_commands(self):
        return [("system: re-run checks", "Run the environment checks again", self.action_rerun_checks)]

    def action_rerun_checks(self) -> None:
        self.query_one("#checks-summary", Label).update("Checking…")
        self.run_checks()

    @work(exclusive=True, exit_on_error=False, group="checks", description="Environment checks")
    async def run_checks(self) -> None:
        """``carexpert check`` in a child process (it imports torch; the app never does)."""
        config = self.app.config_path if self.app.config_path.exists() else None
        self.post_message(ChecksFinished(list(await self.app.services.run_checks(self.app.services, config))))

    def worker_failed(self, worker) -> None:
        if worker.group == "checks":
            self.query_one("#checks-summary", Label).update("The checks could not run (see the message); r tries again.")

    @on(ChecksFinished)
    def show_checks(self, message: ChecksFinished) -> None:
        table = self.query_one("#checks", DataTable)
        counts = {"pass": 0, "warn": 0, "fail": 0}
        rows = []
        for result in message.results:
            status = check_field(result, "status").lower()
            counts[status] = counts.get(status, 0) + 1
            label, variable = STATUS_STYLE.get(status, (status, None))
            color = self.app.theme_variables[variable] if variable else ""
            rows.append((Text(label, style=f"bold {color}"), check_field(result, "name"),
                         check_field(result, "detail"), Text(check_field(result, "fix"), style="italic")))
        fill_table(table, CHECK_COLUMNS, rows, widths=STATUS_WIDTH)
        self.results = list(message.results)
        first_problem = next((i for i, r in enumerate(self.results)
                              if check_field(r, "status").lower() != "pass"), 0)
        if self.results:
            table.move_cursor(row=first_problem)
        verdict = "ready to train" if not counts["fail"] else "fix the failures before training"
        self.query_one("#checks-summary", Label).update(
            f"{counts['pass']} passed · {counts['warn']} warning{'s' * (counts['warn'] != 1)} · "
            f"{counts['fail']} failed — {verdict}")
        self.query_one("#checks-box").set_class(counts["fail"] > 0, "-failing")

    @on(DataTable.RowHighlighted, "#checks")
    def explain_check(self, event: DataTable.RowHighlighted) -> None:
        result = self.results[event.cursor_row] if event.cursor_row < len(self.results) else None
        fix = check_field(result, "fix") if result is not None else ""
        detail = check_field(result, "detail") if result is not None else ""
        text = f"{check_field(result, 'name')}: {detail}" + (f"\nfix: {fix}" if fix else "") if result else ""
        self.query_one("#check-fix", Label).update(text)

    def show_devices(self, gpus: list[dict[str, Any]]) -> None:
        devices = self.query_one("#devices", Horizontal)
        many = len(gpus) > CARDS_UP_TO
        wanted = GpuRows if many else GpuCard if gpus else HostCard
        cards = list(devices.query_children(wanted))
        count = 1 if many else max(len(gpus), 1)
        if len(cards) != count or len(devices.children) != count:
            devices.remove_children()
            cards = [wanted() for _ in range(count)]
            devices.mount_all(cards)
            self.call_after_refresh(self.show_devices, gpus)
            return
        if many:
            cards[0].show(gpus)
        elif gpus:
            for card, reading in zip(cards, gpus):
                card.show(reading)
        else:
            cards[0].show(self.app.host)
