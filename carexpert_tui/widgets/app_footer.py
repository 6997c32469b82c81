"""The footer of every mode screen: Textual's Footer, rebuilt once per burst of binding changes and
only when what it shows changed.

Why: Textual's Footer answers every "bindings updated" signal with a full recompose (all its keys
unmounted and mounted again, styles applied), queued one after the other. When the app starts
following a run, several such signals come within one refresh, and four queued rebuilds delayed
the first key press after it by 130-175 ms (benchmarks/app_latency.py; later presses ~10 ms).
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


def shown_bindings(screen: Screen) -> tuple[Any, ...]:
    """What a footer draws for ``screen``: each shown binding's key, label, state and tooltip."""
    return tuple((binding.key, binding.key_display, binding.description, enabled, tooltip)
                 for (_, binding, enabled, tooltip) in screen.active_bindings.values() if binding.show)


class AppFooter(Footer):
    """A Footer that coalesces its rebuilds and skips those that would draw the same keys."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rebuild_pending = False
        self._shown: tuple[Any, ...] | None = None
        self.rebuilds = 0  # how many times the keys were actually rebuilt (tests, benchmarks)

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_pending:
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        if not self.is_attached:
            return
        shown = shown_bindings(self.screen)
        if shown == self._shown:
            return
        self._shown = shown
        self.rebuilds += 1
        await self.recompose()
