"""Config mode: typed fields validated as you type, raw TOML in sync, save with backup and comments kept."""

from __future__ import annotations

import tomllib

from textual.widgets import Input, Label, TextArea

from carexpert_tui.app import CarExpertApp
from carexpert_tui.widgets.config_field import ConfigField
from tests.tui.doubles import wait_until


def field(app, key: str) -> ConfigField:
    section, name = key.split(".")
    return app.screen.query_one(f"#field-{section}-{name}", ConfigField)


async def type_into(pilot, app, key: str, text: str) -> None:
    section = key.split(".")[0]
    app.screen.query_one("#config-tabs").active = f"tab-{section}"
    assert await wait_until(pilot, lambda: app.screen.query(f"#field-{key.replace('.', '-')}"))
    widget = field(app, key).query_one(Input)
    widget.focus()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


async def test_bad_value_shows_the_schema_message_and_blocks_saving(project, services):
    config_file = project / "carexpert.toml"
    before = config_file.read_text()
    app = CarExpertApp(config_file, services=services, mode="config")
    async with app.run_test(size=(100, 32)) as pilot:
        await type_into(pilot, app, "train.batch_size", "0")
        batch = field(app, "train.batch_size")
        assert batch.has_class("-invalid")
        message = str(batch.query_one(".problem", Label).render())
        assert "expected an integer from 1 to 4096, got 0" in message
        assert "1 problem" in str(app.screen.query_one("#config-status", Label).render())
        # the wrong value never reaches the TOML text, and save refuses
        assert "batch_size = 4" in app.screen.query_one("#raw-toml", TextArea).text
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert config_file.read_text() == before
    assert not (project / "carexpert.toml.bak").exists()


async def test_valid_edit_syncs_to_toml_and_save_keeps_comments_and_a_backup(project, services):
    config_file = project / "carexpert.toml"
    before = config_file.read_text()
    app = CarExpertApp(config_file, services=services, mode="config")
    async with app.run_test(size=(100, 32)) as pilot:
        await type_into(pilot, app, "train.batch_size", "8")
        raw = app.screen.query_one("#raw-toml", TextArea).text
        assert "batch_size = 8" in raw
        derived = str(app.screen.query_one("#derived").render())
        assert "8×4×2 = 64" in derived  # effective batch follows the edit (two fake GPUs)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.config.train.batch_size == 8  # every screen sees the saved config
    text = config_file.read_text()
    assert tomllib.loads(text)["train"]["batch_size"] == 8
    assert "# my carexpert config: comments must survive the editor" in text
    assert '"embedded"   # the offline default' in text
    assert (project / "carexpert.toml.bak").read_text() == before


async def test_raw_toml_edit_updates_the_form_and_reports_problems_by_key(project, services):
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="config")
    async with app.run_test(size=(100, 32)) as pilot:
        area = app.screen.query_one("#raw-toml", TextArea)
        area.load_text(area.text.replace("epochs = 3.0", "epochs = 5.0").replace('"embedded"', '"embedded"\nquantization = "nf5"'))
        app.screen.query_one("#config-tabs").active = "tab-train"
        assert await wait_until(pilot, lambda: app.screen.query("#field-train-epochs")
                                and field(app, "train.epochs").query_one(Input).value == "5.0")
        app.screen.query_one("#config-tabs").active = "tab-model"
        await pilot.pause()
        quant = field(app, "model.quantization")
        assert quant.has_class("-invalid")
        assert "did you mean 'nf4'" in str(quant.query_one(".problem", Label).render())
        area.load_text("[train\nbatch_size = 2")
        assert await wait_until(pilot, lambda: "does not parse" in str(
            app.screen.query_one("#config-status", Label).render()))


async def test_diff_and_revert(project, services):
    config_file = project / "carexpert.toml"
    app = CarExpertApp(config_file, services=services, mode="config")
    async with app.run_test(size=(100, 32)) as pilot:
        await type_into(pilot, app, "train.grad_accum", "2")
        await pilot.press("escape", "ctrl+g")
        await pilot.pause()
        assert "-grad_accum = 4" in app.screen.diff and "+grad_accum = 2" in app.screen.diff
        await pilot.press("escape", "ctrl+r")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert field(app, "train.grad_accum").query_one(Input).value == "4"
        assert "saved" in str(app.screen.query_one("#config-status", Label).render())


async def test_open_another_file_makes_it_the_apps_config(project, services):
    other = project / "other.toml"
    other.write_text('[train]\nbatch_size = 2\nruns_dir = "elsewhere"\n')
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="config")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("escape", "ctrl+o")
        await pilot.pause()
        prompt = app.screen.query_one(Input)
        prompt.value = "other.toml"
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: app.config_path.resolve() == other)
        assert app.config.train.runs_dir == "elsewhere"
        app.screen.query_one("#config-tabs").active = "tab-train"
        assert await wait_until(pilot, lambda: app.screen.query("#field-train-batch_size"))
        assert field(app, "train.batch_size").query_one(Input).value == "2"
