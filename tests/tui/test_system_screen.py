"""System mode: the checks table and a card per GPU (or the host without one)."""

from __future__ import annotations

from textual.widgets import DataTable, Label

from carexpert.errors import UserError
from carexpert_tui.app import CarExpertApp
from carexpert_tui.widgets.gpu_card import GpuCard, GpuRow, GpuRows, HostCard
from tests.tui.doubles import FAKE_FOUR_GPUS, fake_services, wait_until


async def test_checks_and_gpu_cards_show(project, services):
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="system")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        table = app.screen.query_one("#checks", DataTable)
        assert table.row_count == 4
        assert "1 failed" in str(app.screen.query_one("#checks-summary", Label).render())
        cards = list(app.screen.query(GpuCard))
        assert len(cards) == 2
        assert "31.0G/80.0G" in cards[0].border_title


async def test_four_gpus_get_one_row_each_at_80_columns(project):
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(gpus=FAKE_FOUR_GPUS), mode="system")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: len(app.screen.query(GpuRow)) == 4
                                and "4 GPUs" in (app.screen.query_one(GpuRows).border_title or ""))
        await pilot.pause()
        assert not app.screen.query(GpuCard)
        assert app.screen.query_one(GpuRows).border_title == "4 GPUs · VRAM 214.0G/564.0G"
        rows = list(app.screen.query(GpuRow))
        assert str(rows[3].query_one(".figures", Label).render()).split() == ["67.0G/141.0G", "87%", "63°C", "570W"]
        assert all(row.region.height == 1 and row.region.right <= 80 for row in rows)
        assert "pid 5003 python 66.0G" in str(rows[3].tooltip)


async def test_host_card_without_gpu(project):
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(gpus=[]), mode="system")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert app.screen.query(HostCard)
        assert not app.screen.query(GpuCard)
        assert "RAM 21.0G/128.0G" in app.screen.query_one(HostCard).border_title


async def test_checks_that_cannot_run_are_reported_not_swallowed(project):
    async def broken(services, config_path):
        raise UserError("carexpert check did not report its results", fix="run 'carexpert check' in a shell")

    services = fake_services()
    services.run_checks = broken
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="system")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: "could not run" in str(app.screen.query_one("#checks-summary", Label).render()))
        assert any("carexpert check did not report" in str(n.message) for n in app._notifications)
