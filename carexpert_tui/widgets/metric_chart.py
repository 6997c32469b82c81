"""A live line chart of one or more series (loss, validation loss, learning rate).

Points arrive with every event but the chart redraws at most once per batch: its owner
calls ``redraw`` after adding a batch's points (so they land in the same screen update as
the rest of the batch), and its own clock (``ui.refresh_seconds``) catches anything else
(a theme switch, being shown again). It redraws only when something changed and only
while it can be seen; its timer is paused while the chart is hidden. Line colours are
theme variables, so a theme switch recolours it. A history longer than the chart is wide
is drawn through each pixel column's first, lowest, highest and last point
(``carexpert_tui.series.envelope``): the same line at a cost bounded by the width.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label
from textual_plot import HiResMode, PlotWidget

from carexpert_tui.series import DecimatedSeries, envelope

SPARSE_POINTS = 12


class MetricChart(Vertical):
    """Named series drawn with the theme colour named beside each."""

    DEFAULT_CSS = """
    MetricChart {
        height: 1fr;
        & > Label { color: $text-muted; width: 1fr; }
        & PlotWidget { height: 1fr; }
        & PlotWidget #legend { border: round $panel-lighten-2; }
    }
    """

    def __init__(self, title: str, series: dict[str, str], *, id: str | None = None, max_points: int = 1000):
        super().__init__(id=id)
        self.chart_title = title
        self.line_colors = dict(series)
        self.series = {name: DecimatedSeries(max_points) for name in series}
        self._dirty = True
        self._timer = None

    def compose(self) -> ComposeResult:
        yield Label(self.chart_title, classes="chart-title")
        yield PlotWidget(allow_pan_and_zoom=True)

    def on_mount(self) -> None:
        plot = self.query_one(PlotWidget)
        plot.margin_top = 0
        plot.margin_bottom = 2
        plot.set_xlabel("step")
        self._timer = self.set_interval(self.app.config.ui.refresh_seconds, self.redraw)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.mark_dirty())

    def on_show(self) -> None:
        if self._timer is not None:
            self._timer.resume()
        self.mark_dirty()

    def on_hide(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def mark_dirty(self) -> None:
        self._dirty = True

    def add_point(self, name: str, x: float, y: float | None) -> None:
        if y is None:
            return
        self.series[name].append(float(x), float(y))
        self._dirty = True

    def clear(self) -> None:
        for series in self.series.values():
            series.clear()
        self._dirty = True

    def latest(self, name: str) -> float | None:
        last = self.series[name].last
        return None if last is None else last[1]

    @staticmethod
    def pixel_columns(plot: PlotWidget) -> int:
        """Braille columns of the plot area (two per cell, inside the axes' one-cell frame); 0 before layout."""
        canvas = plot.query_one("#plot")
        return max(canvas.size.width - 2, 0) * 2

    def redraw(self) -> None:
        """Replot when points arrived since the last draw and the chart is on screen."""
        if not self._dirty or not self.is_mounted or not self.screen.is_current \
                or not self.screen.can_view_partial(self):
            return
        self._dirty = False
        plot = self.query_one(PlotWidget)
        plot.clear()
        variables = self.app.theme_variables
        columns = self.pixel_columns(plot)
        drawn = False
        for name, series in self.series.items():
            xs, ys = envelope(*series.points(), columns)
            if xs:
                color = variables.get(self.line_colors[name], variables.get("foreground"))
                if len(xs) <= SPARSE_POINTS:  # a few evaluations: markers, since a line needs two points
                    plot.scatter(xs, ys, marker="◆", marker_style=color, label=name)
                else:
                    plot.plot(xs, ys, line_style=color, hires_mode=HiResMode.BRAILLE, label=name)
                drawn = True
        plot.show_legend(is_visible=drawn and len(self.series) > 1)
        parts = [f"{name} {self.latest(name):.4g}" for name in self.series if self.latest(name) is not None]
        self.query_one(".chart-title", Label).update(f"{self.chart_title}   " + "   ".join(parts) if parts else self.chart_title)
