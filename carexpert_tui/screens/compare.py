"""Runs side by side: their loss curves overlaid, the settings that differ, their eval results.

Everything comes from ``carexpert.runs.compare.compare_runs`` (the same data as
``carexpert compare``), read in a thread: a long run's events file takes a moment to
parse. Each run is labelled by the shortest unique tail of its id so two runs fit
side by side at 80 columns; the title line maps labels to full ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label
from textual.worker import Worker, WorkerState
from textual_plot import HiResMode, PlotWidget

from carexpert.evaluation.sides import headline_side
from carexpert_tui.formatting import describe_error, number
from carexpert_tui.series import DecimatedSeries
from carexpert_tui.tables import fill_table

# Theme colours the runs' curves take in turn.
RUN_COLORS = ("primary", "accent", "secondary", "success", "warning", "error")
EVAL_METRICS = (("score", "eval score"), ("correct_rate", "correct"), ("numeric_accuracy", "numeric acc."))


def short_labels(run_ids: list[str]) -> list[str]:
    """The shortest dash-separated tails of the ids that tell them apart."""
    for parts in range(1, 8):
        labels = ["-".join(run_id.split("-")[-parts:]) for run_id in run_ids]
        if len(set(labels)) == len(labels):
            return labels
    return list(run_ids)


def shown(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return number(value, 4)
    return str(value)


def result_rows(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(metric, value per run) for the results table: training finals, then the latest evaluation."""
    finals = data["finals"]
    rows = [("steps", [shown(f["steps"]) for f in finals]),
            ("last loss", [shown(f["last_train_loss"]) for f in finals]),
            ("best val loss", [shown(f["best_val_loss"]) for f in finals])]
    summaries = data["eval"]
    if any(summaries):
        tuned = [((s or {}).get("overall") or {}).get(headline_side((s or {}).get("sides") or []) or "") or {}
                 for s in summaries]
        for key, label in EVAL_METRICS:
            rows.append((label, [shown(t.get(key)) for t in tuned]))
        rows.append(("eval val loss", [shown(((s or {}).get("val_loss") or {}).get("tuned")) for s in summaries]))
    return rows


class CompareScreen(Screen[None]):
    """Overlaid loss curves, config diff and results of two or more runs; escape closes."""

    CSS_PATH = "compare.tcss"
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="close-compare")]

    def __init__(self, runs_dir: str | Path, run_ids: list[str]):
        super().__init__()
        self.runs_dir = runs_dir
        self.run_ids = list(run_ids)
        self.labels = short_labels(self.run_ids)
        self.data: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-main"):
            yield Label("Comparing " + ", ".join(self.run_ids), id="compare-title")
            yield PlotWidget(id="compare-plot")
            with Horizontal(id="compare-tables"):
                yield DataTable(id="config-diff", cursor_type="row", zebra_stripes=True)
                yield DataTable(id="run-results", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        plot = self.query_one(PlotWidget)
        plot.margin_top = 0
        plot.set_xlabel("step")
        plot.set_ylabel("train loss")
        self.query_one("#config-diff").border_title = "Config differences"
        self.query_one("#run-results").border_title = "Results"
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, description="Reading the runs to compare")
    def load(self) -> None:
        from carexpert.runs.compare import compare_runs

        data = compare_runs(self.runs_dir, self.run_ids)
        self.app.call_from_thread(self.show, data)

    @on(Worker.StateChanged)
    def report_failed_load(self, event: Worker.StateChanged) -> None:
        """A run that cannot be read leaves a message on the screen, not an empty one (and a toast)."""
        if event.state is not WorkerState.ERROR:
            return
        self.app.report_worker_error(event)
        self.query_one("#compare-title", Label).update(
            f"Could not compare {', '.join(self.run_ids)}: {describe_error(event.worker.error)} — escape closes")

    def show(self, data: dict[str, Any]) -> None:
        self.data = data
        self.draw_curves(data["curves"])
        diff_rows = [(key, *(shown(v) for v in values)) for key, values in data["config_diff"].items()]
        fill_table(self.query_one("#config-diff", DataTable), ["setting", *self.labels],
                   diff_rows or [("(same config)", *("" for _ in self.labels))])
        fill_table(self.query_one("#run-results", DataTable), ["metric", *self.labels],
                   [(label, *values) for label, values in result_rows(data)])
        self.query_one("#compare-title", Label).update(
            "  ".join(f"{label} = {run_id}" for label, run_id in zip(self.labels, self.run_ids)))

    def draw_curves(self, curves: list[Any]) -> None:
        plot = self.query_one(PlotWidget)
        plot.clear()
        variables = self.app.theme_variables
        for index, (label, curve) in enumerate(zip(self.labels, curves)):
            series = DecimatedSeries(1000)
            for step, loss in curve.train:
                series.append(step, loss)
            xs, ys = series.points()
            if xs:
                color = variables.get(RUN_COLORS[index % len(RUN_COLORS)], variables.get("foreground"))
                plot.plot(xs, ys, line_style=color, hires_mode=HiResMode.BRAILLE, label=label)
        plot.show_legend(is_visible=True)
