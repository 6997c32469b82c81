"""What every mode screen shares: the header on top, the footer at the bottom."""

from __future__ import annotations

import gc

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from carexpert_tui.widgets.app_footer import AppFooter
from carexpert_tui.widgets.app_header import AppHeader


class ModeScreen(Screen):
    """A top-level mode; subclasses yield their body from ``compose_body``."""

    BINDINGS = [Binding("escape", "leave_field", "Leave field", id="leave-field", show=False,
                        tooltip="Take focus out of a text field (so single-letter keys work)")]

    def compose(self) -> ComposeResult:
        yield AppHeader()
        yield from self.compose_body()
        yield AppFooter(compact=True, show_command_palette=False)

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    @on(events.Mount)
    def freeze_long_lived_objects(self) -> None:
        """Once the screen is drawn, move every object alive into the collector's permanent generation.

        Why: the imports and the screens' widgets are ~100k objects that live as long as the app, and each
        full collection walked all of them: pauses of up to 375 ms on a loaded 2-core machine while a run
        logged 100 events/s (benchmarks/app_latency.py), each one a late frame. Refcounting still frees them.
        Only where the process is the app (``freeze_gc``): a test process running many apps would keep
        every earlier app's uncollected cycles for good.
        """
        if getattr(self.app, "freeze_gc", False):
            self.call_after_refresh(gc.freeze)

    @on(Worker.StateChanged)
    def report_failed_worker(self, event: Worker.StateChanged) -> None:
        """Worker state messages do not bubble: hand failures to the app's one reporter."""
        if event.state is WorkerState.ERROR:
            self.app.report_worker_error(event)
            self.worker_failed(event.worker)

    def worker_failed(self, worker: Worker) -> None:
        """Put the screen back in a usable state after one of its workers failed."""

    def action_leave_field(self) -> None:
        self.set_focus(None)

    def palette_commands(self) -> list[tuple[str, str, object]]:
        """Rare actions for the command palette, titled ``"<mode>: <verb> <noun>"``."""
        return []
