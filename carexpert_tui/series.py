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
