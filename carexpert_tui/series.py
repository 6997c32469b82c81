"""A bounded history of (x, y) points for live charts.

A run of a million steps must not grow the app's memory without limit, and a chart a
hundred cells wide cannot show more than a few hundred points anyway. When the
history reaches ``max_points``, every other point is dropped (the first and the
newest are always kept) and the stride at which new points are kept doubles: the
curve keeps its shape over the whole run at a fixed cost.
"""

from __future__ import annotations


class DecimatedSeries:
    """Append-only (x, y) points, thinned to at most ``max_points``."""

    def __init__(self, max_points: int = 1000):
        if max_points < 4:
            raise ValueError("max_points must be at least 4")
        self.max_points = max_points
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.stride = 1
        self._seen = 0
        self.last: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self.xs)

    def append(self, x: float, y: float) -> None:
        """Record a point; kept when it falls on the current stride (the newest is always shown)."""
        self.last = (x, y)
        if self._seen % self.stride == 0:
            self.xs.append(x)
            self.ys.append(y)
            if len(self.xs) >= self.max_points:
                self.xs = self.xs[::2]
                self.ys = self.ys[::2]
                self.stride *= 2
        self._seen += 1

    def points(self) -> tuple[list[float], list[float]]:
        """The kept points plus the newest one, ready to plot."""
        if self.last is not None and (not self.xs or self.xs[-1] != self.last[0]):
            return self.xs + [self.last[0]], self.ys + [self.last[1]]
        return list(self.xs), list(self.ys)

    def clear(self) -> None:
        self.__init__(self.max_points)


def envelope(xs: list[float], ys: list[float], columns: int) -> tuple[list[float], list[float]]:
    """The points a line chart ``columns`` pixels wide needs: per column the first, lowest, highest and last.

    A line through those four points of every column lights the same column spans as a line
    through all of them (the M4 reduction, Jugel et al., VLDB 2014), at a cost bounded by the
    chart's width rather than the history's length. ``xs`` must be ascending; short inputs
    come back unchanged.
    """
    if columns < 1 or len(xs) <= 4 * columns:
        return xs, ys
    low, span = xs[0], (xs[-1] - xs[0]) or 1.0
    keep: list[int] = []
    column = first = lowest = highest = -1
    for index, x in enumerate(xs):
        here = min(columns - 1, int((x - low) / span * columns))
        if here != column:
            if column >= 0:
                keep += sorted({first, lowest, highest, index - 1})
            column, first, lowest, highest = here, index, index, index
        elif ys[index] < ys[lowest]:
            lowest = index
        elif ys[index] > ys[highest]:
            highest = index
    keep += sorted({first, lowest, highest, len(xs) - 1})
    return [xs[i] for i in keep], [ys[i] for i in keep]
