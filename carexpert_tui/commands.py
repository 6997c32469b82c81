"""The command palette's carexpert commands (ctrl+p), namespaced ``mode: ...``, ``theme: ...``.

Screen-specific commands come from the active screen: a mode screen may define
``palette_commands()`` returning ``(title, help, callback)`` tuples, titled
``"train: stop run"`` and so on, so rare actions stay reachable without a key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.command import DiscoveryHit, Hit, Hits, Provider

PaletteCommand = tuple[str, str, Callable[[], object]]

MODE_TITLES = {"system": "System", "config": "Config", "train": "Train", "eval": "Eval", "chat": "Chat"}


def app_commands(app, screen) -> Iterable[PaletteCommand]:
    """Mode switches, themes, help, then whatever the screen offers."""
    for mode, title in MODE_TITLES.items():
        yield (f"mode: {title}", f"Switch to the {title} screen",
               lambda mode=mode: app.switch_mode(mode))
    for name in sorted(app.available_themes):
        if name.startswith("carexpert") or name in ("textual-dark", "textual-light"):
            yield (f"theme: {name}", "Use this colour theme (remembered in the config)",
                   lambda name=name: setattr(app, "theme", name))
    yield ("help: keys", "Show every key binding", app.action_show_help)
    offer = getattr(screen, "palette_commands", None)
    if callable(offer):
        yield from offer()


class CarExpertCommands(Provider):
    """Palette provider for the app's own commands."""

    def _commands(self) -> list[PaletteCommand]:
        return list(app_commands(self.app, self.screen))

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
