"""The Train screen's right side: the followed run's title, notices, progress, charts and log.

It shows what it is handed and reads nothing itself: the screen follows the run's files in
a thread worker and passes one batch a tick (every event and log line read since the last,
``carexpert_tui.run_feed``) to ``show_batch``, which applies it in one update: every point
to the charts and one redraw each, the progress and stats from the batch's last step, one
write to the log. Text from the run's files is shown as text, never as markup.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Log, ProgressBar, TabbedContent, TabPane

from carexpert.textsafe import strip_controls
from carexpert_tui import recovery
from carexpert_tui.formatting import duration, number, stats_line
from carexpert_tui.run_rows import RunRow
from carexpert_tui.widgets.metric_chart import MetricChart
from carexpert_tui.widgets.vram_panel import VramPanel


class RunView(Vertical):
    """One run at a time: ``clear`` when another is chosen, then ``show_row`` and ``show_batch``."""

    def compose(self) -> ComposeResult:
        yield Label("Select a run, or press s to start one.", id="run-title")
        for notice_id in ("run-attached", "run-warning", "run-problem"):
            notice = Label(id=notice_id)
            notice.display = False
            yield notice
        yield ProgressBar(total=None, show_eta=False, id="run-progress")
        yield Label("", id="run-stats")
        yield MetricChart("loss", {"train": "loss-train", "val": "loss-eval"}, id="loss-chart")
        with TabbedContent(id="train-tabs"):
            with TabPane("LR", id="tab-lr"):
                yield MetricChart("learning rate", {"lr": "lr-line"}, id="lr-chart")
            with TabPane("VRAM", id="tab-vram"):
                yield VramPanel(id="vram")
            with TabPane("Log", id="tab-log"):
                yield Log(max_lines=2000, id="run-log")

    def clear(self) -> None:
        for chart in self.query(MetricChart):
            chart.clear()
        self.query_one(VramPanel).clear()
        self.query_one(Log).clear()
        self.query_one("#run-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#run-stats", Label).update("")
        for notice in ("#run-problem", "#run-warning"):
            self.query_one(notice).display = False

    def show_row(self, row: RunRow) -> None:
        """The run's id and state from the runs list, and who drives it when not this app."""
        self.query_one("#run-title", Label).update(Text(f"{row.run_id} · {row.state}"))
        self.set_class(row.live, "-live")
        attached = self.query_one("#run-attached", Label)
        attached.display = row.attached
        if row.attached:
            owner = f"pid {row.owner_pid}" if row.owner_pid else "another process"
            attached.update(f"attached, read-only: {owner} drives this run; "
                            + ("stop it with x to resume later" if row.live else "it holds the run's lock"))
        if row.stalled and not self.query_one("#run-warning").display:
            self.show_stall(None)  # the stalled event, once read, adds how long

    def show_batch(self, events: list[dict[str, Any]], log_text: str = "") -> None:
        """Apply one tick's events and log text: the charts redraw once, the log is written once."""
        notes = self.show_events(events)
        log = self.query_one(Log)
        if notes:
            log.write_lines(notes)
        if log_text:
            log.write(log_text)
        for chart in self.query(MetricChart):
            chart.redraw()  # now, so the whole batch lands in this update rather than on the charts' clock

    def show_events(self, events: list[dict[str, Any]]) -> list[str]:
        """Every point to the charts, the last step to the progress line; the log's notes are returned."""
        loss, lr = self.query_one("#loss-chart", MetricChart), self.query_one("#lr-chart", MetricChart)
        warning = self.query_one("#run-warning")
        notes: list[str] = []
        last_step = None
        for event in events:
            kind = event.get("type")
            if kind == "step":
                step = event.get("step", 0)
                loss.add_point("train", step, event.get("loss"))
                lr.add_point("lr", step, event.get("lr"))
                last_step = event
            elif kind == "eval":
                loss.add_point("val", event.get("step", 0), event.get("val_loss"))
            elif kind == "status":
                self.show_problem(event)
            if kind == "stalled":
                self.show_stall(event)
            elif kind in ("start", "step"):
                warning.display = False
            if kind in ("checkpoint", "notice", "stalled", "summary"):
                notes.append(f"[{kind}] " + ", ".join(f"{k}={v}" for k, v in event.items()
                                                      if k not in ("v", "type", "time", "config")))
        if last_step is not None:
            self.show_step(last_step)
        return notes

    def show_step(self, event: dict[str, Any]) -> None:
        max_steps = event.get("max_steps")
        self.query_one("#run-progress", ProgressBar).update(total=max_steps or None, progress=event.get("step", 0))
        self.query_one("#run-stats", Label).update(stats_line(event))
        self.query_one(VramPanel).update_from_step(event, self.app.gpus)

    def show_problem(self, event: dict[str, Any]) -> None:
        problem = self.query_one("#run-problem", Label)
        error = event.get("error")
        advice = event.get("advice") or []
        problem.display = bool(error)
        if error:
            texts = [item.get("text", "") if isinstance(item, dict) else str(item) for item in advice[:3]]
            fix = " (press a to apply the first and resume)" if recovery.first_fix(advice) else ""
            shown = f"{event.get('state', 'failed')}: {error}{fix}" + "".join(f"\n→ {t}" for t in texts)
            problem.update(Text(strip_controls(shown)))  # from the run's files: text, never markup
        self.refresh_bindings()  # the screen's a (apply the fix) follows the run's state

    def show_stall(self, event: dict[str, Any] | None) -> None:
        warning = self.query_one("#run-warning", Label)
        detail = ""
        if event and event.get("seconds_since_step") is not None:
            detail = (f": no step for {duration(event['seconds_since_step'])} "
                      f"(median step {number(event.get('median_step_s'), 2)} s)")
        warning.update(f"⚠ stalled{detail}. Check the GPU and the log; stop with x.")
        warning.display = True
