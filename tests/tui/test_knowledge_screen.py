"""The knowledge screen: f2 opens it from any mode, a search lists the passages best first and shows
the highlighted one in full; search errors are said, not raised; markup in passages stays text."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from carexpert.errors import UserError
from carexpert_tui.app import CarExpertApp
from carexpert_tui.screens.knowledge import KnowledgeScreen
from tests.tui.doubles import fake_services, wait_until

CAMRY = {"id": "toyota-camry-2024-le", "kind": "vehicle", "title": "2024 Toyota Camry LE", "score": 9.5,
         "how": "entity", "text": "2024 Toyota Camry LE (family sedan). Power: 203 hp (151 kW). [bold]x[/]"}
TURBO = {"id": "concept:turbocharger", "kind": "concept", "title": "Turbocharger", "score": 2.25, "how": "text",
         "text": "Turbocharger: an exhaust-driven compressor."}


async def test_f2_search_lists_hits_and_shows_the_highlighted_passage(project):
    asked = []
    services = fake_services()
    services.kb_search = lambda config, query, k: asked.append((query, k)) or [CAMRY, TURBO]
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="system")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f2")
        assert await wait_until(pilot, lambda: isinstance(app.screen, KnowledgeScreen))
        screen = app.screen
        await pilot.press(*"camry hp", "enter")
        table = screen.query_one("#kb-hits", DataTable)
        assert await wait_until(pilot, lambda: table.row_count == 2)
        assert asked == [("camry hp", 8)]
        detail = str(screen.query_one("#kb-detail", Static).render())
        assert "203 hp (151 kW)" in detail and "[bold]x[/]" in detail  # shown as text, not markup
        table.focus()
        await pilot.press("down")
        assert await wait_until(pilot, lambda: "exhaust-driven" in str(screen.query_one("#kb-detail", Static).render()))
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, KnowledgeScreen))


async def test_a_failing_search_is_reported_on_the_screen(project):
    def broken(config, query, k):
        raise UserError("this Python's sqlite3 has no FTS5")

    services = fake_services()
    services.kb_search = broken
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="system")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f2", *"turbo", "enter")
        status = app.screen.query_one("#kb-status", Static)
        assert await wait_until(pilot, lambda: "FTS5" in str(status.render()))
