"""A bar of used/total memory: fixed-width in rows that list several GPUs, or as wide as its card.

``ProgressBar`` fills by its width at the time it draws; when that draw comes before the
layout has settled, a reading can end up drawn half a cell off and stay so (seen as a flaky
System-screen snapshot). This bar draws from its reading and its own width every time it
renders: a fixed cell count, or (``cells=None``) the width it has now, so a reading always
draws the same bar once the layout is done.
"""

from __future__ import annotations

from rich.style import Style
from textual.reactive import reactive
from textual.renderables.bar import Bar
from textual.widget import Widget

CELLS = 24


class MemoryBar(Widget):
    COMPONENT_CLASSES = {"memory-bar--used"}
    DEFAULT_CSS = """
    MemoryBar { height: 1; }
    MemoryBar > .memory-bar--used { color: $vram-used; background: $surface; }
    """

    fraction: reactive[float] = reactive(0.0)

    def __init__(self, cells: int | None = CELLS, *, classes: str | None = None):
        super().__init__(classes=classes)
        self.cells = cells
        if cells is not None:
            self.styles.width = cells

    def show(self, used: float, total: float) -> None:
        self.fraction = min(max(used / total, 0.0), 1.0) if total > 0 else 0.0

    def render(self) -> Bar:
        style = self.get_component_rich_style("memory-bar--used")
        cells = self.cells if self.cells is not None else self.size.width
        return Bar((0, cells * self.fraction), highlight_style=Style.from_color(style.color),
                   background_style=Style.from_color(style.bgcolor), width=cells)
