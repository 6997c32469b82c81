"""carexpert-tui moves what lives as long as the app out of the collector's reach once a screen is drawn
(full collections walked ~100k such objects: pauses of up to 375 ms under load); a test process does not."""

from __future__ import annotations

import gc

import carexpert_tui.__main__ as entry
from carexpert_tui.app import CarExpertApp
from tests.tui.doubles import wait_until


async def test_the_app_freezes_long_lived_objects_after_its_first_screen_only_when_told(project, services):
    gc.unfreeze()
    try:
        app = CarExpertApp(project / "carexpert.toml", services=services, mode="system")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            assert gc.get_freeze_count() == 0
        app = CarExpertApp(project / "carexpert.toml", services=services, mode="system", freeze_gc=True)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_until(pilot, lambda: gc.get_freeze_count() > 10_000)
            before = gc.get_freeze_count()
            await pilot.press("3")  # a screen mounted later freezes what it built too
            assert await wait_until(pilot, lambda: gc.get_freeze_count() > before)
    finally:
        gc.unfreeze()


def test_the_entry_point_runs_the_app_with_the_freeze(monkeypatch):
    made = {}

    class Recorder(CarExpertApp):
        def run(self, *args, **kwargs):
            made["freeze_gc"] = self.freeze_gc

    monkeypatch.setattr("carexpert_tui.app.CarExpertApp", Recorder)
    monkeypatch.setattr(entry, "exit_now", lambda code: made.setdefault("code", code))
    assert entry.main([]) == 0
    assert made == {"freeze_gc": True, "code": 0}
