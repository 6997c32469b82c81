"""AppFooter: one rebuild for a burst of binding changes, none when the keys it shows are the same."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Label
from textual.widgets._footer import FooterKey

from carexpert_tui.widgets.app_footer import AppFooter


class KeysScreen(Screen):
    BINDINGS = [Binding("s", "start", "Start"), Binding("x", "stop", "Stop")]
    running = False

    def compose(self) -> ComposeResult:
        yield Label("body")
        yield AppFooter(compact=True, show_command_palette=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return True if self.running else None  # dimmed until something runs
        return True


class KeysApp(App):
    def on_mount(self) -> None:
        self.push_screen(KeysScreen())


def key_states(footer: AppFooter) -> dict[str, bool]:
    return {key.key: not key.has_class("-disabled") for key in footer.query(FooterKey)}


async def test_a_burst_of_binding_changes_rebuilds_once_and_an_unchanged_one_not_at_all():
    app = KeysApp()
    async with app.run_test(size=(60, 8)) as pilot:
        await pilot.pause()
        screen = app.screen
        footer = screen.query_one(AppFooter)
        start = footer.rebuilds
        assert key_states(footer) == {"s": True, "x": False}
        for _ in range(4):
            screen.refresh_bindings()
        await pilot.pause()
        assert footer.rebuilds == start  # nothing it shows changed
        screen.running = True
        for _ in range(4):
            screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert footer.rebuilds == start + 1
        assert key_states(footer) == {"s": True, "x": True}
