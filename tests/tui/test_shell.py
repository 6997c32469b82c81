"""The shell: modes by key, the help screen, the palette's commands, and quitting with a live run."""

from __future__ import annotations

import json
import shutil

from textual.widgets import DataTable

from carexpert_tui.app import CarExpertApp
from carexpert_tui.commands import app_commands
from carexpert_tui.screens.confirm import ConfirmScreen
from carexpert_tui.screens.help import HelpScreen
from tests.tui.doubles import FIXTURE_RUNS, wait_until


async def test_number_keys_switch_modes_and_help_lists_every_binding(project, services):
    app = CarExpertApp(project / "carexpert.toml", services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, mode in (("2", "config"), ("3", "train"), ("4", "eval"), ("5", "chat"), ("1", "system")):
            await pilot.press("escape", key)  # escape first: a focused text field would take the digit
            assert app.current_mode == mode
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = [app.screen.query_one(DataTable).get_row_at(i) for i in range(app.screen.query_one(DataTable).row_count)]
        actions = {(str(where), str(does).split(":")[0]) for where, _key, does in rows}
        for expected in [("Everywhere", "Train"), ("Everywhere", "Leave field"), ("Train", "Start"), ("Train", "Stop"),
                         ("Config", "Save"), ("Chat · PromptInput", "Stop"), ("Eval", "New eval"),
                         ("Chat · PromptInput", "Earlier question")]:
            assert expected in actions, expected
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        titles = [title for title, _help, _callback in app_commands(app, app.screen)]
        assert {"mode: Train", "theme: carexpert-light", "theme: carexpert-high-contrast",
                "system: re-run checks"} <= set(titles)


async def test_quitting_with_a_live_run_asks_and_says_it_goes_on(project, services):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    status_file = project / "runs" / "run-20261125-143000-cd34" / "status.json"
    status = json.loads(status_file.read_text())
    status.update(state="running", host="some-other-host")  # live elsewhere: no pid check on this host
    status_file.write_text(json.dumps(status))
    app = CarExpertApp(project / "carexpert.toml", services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.live_runs())
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "keeps going after you quit" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


async def test_keymap_in_the_config_rebinds_keys_by_binding_id(project, services):
    config = project / "carexpert.toml"
    config.write_text(config.read_text() + '\n[ui.keymap]\nmode-train = "t"\n')
    app = CarExpertApp(config, services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        assert app.current_mode == "train"


async def test_a_run_that_ends_is_announced(project, services):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    status_file = project / "runs" / "run-20261125-143000-cd34" / "status.json"
    status = json.loads(status_file.read_text())
    status.update(state="running", host="some-other-host")
    status_file.write_text(json.dumps(status))
    app = CarExpertApp(project / "carexpert.toml", services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_until(pilot, lambda: app.live_runs())
        status.update(state="failed", error="CUDA out of memory")
        status_file.write_text(json.dumps(status))
        assert await wait_until(pilot, lambda: not app.live_runs())
        await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
        assert any("run-20261125-143000-cd34 failed: CUDA out of memory" in m for m in messages), messages
