"""Findings 8 and 9 in the app (Pilot): one bad ``status.json`` hides only its run; deeply
nested TOML is a message at start-up and in the raw editor, and never costs unsaved edits."""

from __future__ import annotations

import json

import pytest
import textual.constants
from hostile_support import make_run
from textual.widgets import TextArea

from carexpert.config import Config
from carexpert_tui.app import CarExpertApp
from tests.tui.doubles import fake_services, wait_until

DEEP_TOML = "a = " + "[" * 10_000 + "]" * 10_000 + "\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(textual.constants, "TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None, raising=False)
    (tmp_path / "carexpert.toml").write_text('[train]\nruns_dir = "runs"\nbatch_size = 4\n', encoding="utf-8")
    (tmp_path / "runs").mkdir()
    return tmp_path


def _errors(app) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "error"]


async def test_finding_8_a_status_with_a_string_pid_does_not_empty_the_apps_run_list(project):
    make_run(project / "runs", "run-good", "finished")
    bad = make_run(project / "runs", "run-bad", "running")
    data = json.loads(bad.status.read_text())
    data["pid"] = "1"
    bad.status.write_text(json.dumps(data))
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        assert await wait_until(pilot, lambda: len(app.runs) == 2)
        states = {row.run_id: row.state for row in app.runs}
        assert states == {"run-good": "finished", "run-bad": "unknown"}
        await pilot.pause(0.3)
        assert not any("Scanning runs" in message for message in _errors(app))


async def test_finding_9_a_deeply_nested_config_file_starts_the_app_on_defaults_with_a_message(project):
    deep = project / "deep.toml"
    deep.write_text(DEEP_TOML)
    app = CarExpertApp(deep, services=fake_services(), mode="system")
    async with app.run_test(size=(100, 32)) as pilot:
        assert await wait_until(pilot, lambda: any("nested too deeply" in m for m in _errors(app)))
        assert app.config.to_dict() == Config().to_dict()  # the built-in defaults until the file is fixed


async def test_finding_9_pasting_deep_toml_into_the_raw_editor_keeps_the_app_and_the_edits(project):
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="config")
    async with app.run_test(size=(100, 32)) as pilot:
        area = app.screen.query_one("#raw-toml", TextArea)
        edited = area.text.replace("batch_size = 4", "batch_size = 6") + "\n# my unsaved note\n" + DEEP_TOML
        area.load_text(edited)
        assert await wait_until(pilot, lambda: "does not parse" in str(app.screen.query_one("#config-status").render()))
        assert "nested too deeply" in str(app.screen.query_one("#config-problems").render())
        assert app.is_running and area.text == edited  # nothing typed is lost
        await pilot.press("ctrl+s")  # saving refuses, and says why
        await pilot.pause(0.2)
        assert any("nested too deeply" in m for m in _errors(app))
        assert area.text == edited
    assert "batch_size = 4" in (project / "carexpert.toml").read_text()
