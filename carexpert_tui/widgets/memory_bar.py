"""A fixed-width bar of used/total memory, for rows that list several GPUs.

``ProgressBar`` fills by its width at the time it draws; when that draw comes before the
row's layout has settled, equal readings can end up as bars half a cell apart. This bar
has a cell count of its own, so a reading always draws the same bar.
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

    def __init__(self, cells: int = CELLS, *, classes: str | None = None):
        super().__init__(classes=classes)
        self.cells = cells
        self.styles.width = cells

    def show(self, used: float, total: float) -> None:
        self.fraction = min(max(used / total, 0.0), 1.0) if total > 0 else 0.0

    def render(self) -> Bar:
        style = self.get_component_rich_style("memory-bar--used")
        return Bar((0, self.cells * self.fraction), highlight_style=Style.from_color(style.color),
                   background_style=Style.from_color(style.bgcolor), width=self.cells)
