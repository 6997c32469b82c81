"""Themes are data files; a broken one is named and skipped, and the choice is remembered."""

from __future__ import annotations

import tomllib

from carexpert_tui.app import CarExpertApp
from carexpert_tui.themes import load_themes, themes_dir
from tests.tui.doubles import wait_until


def test_shipped_themes_load_and_cover_dark_light_and_high_contrast():
    themes, problems = load_themes(themes_dir())
    assert problems == []
    by_name = {t.name: t for t in themes}
    assert {"carexpert-dark", "carexpert-light", "carexpert-high-contrast"} <= set(by_name)
    assert by_name["carexpert-light"].dark is False
    assert "loss-train" in by_name["carexpert-dark"].variables


def test_broken_theme_files_are_reported_by_name(tmp_path):
    (tmp_path / "good.toml").write_text('name = "good"\nprimary = "#336699"\n')
    (tmp_path / "badcolour.toml").write_text('name = "bad"\nprimary = "#33669"\n')
    (tmp_path / "typo.toml").write_text('name = "typo"\nprimary = "red"\nprimry = "blue"\n')
    (tmp_path / "broken.toml").write_text('name = "x\n')
    themes, problems = load_themes(tmp_path)
    assert [t.name for t in themes] == ["good"]
    rendered = sorted(p.render() for p in problems)
    assert rendered[0].startswith("badcolour.toml: 'primary': '#33669' is not a colour")
    assert rendered[1].startswith("broken.toml: malformed TOML")
    assert rendered[2] == "typo.toml: unknown key 'primry'"
    assert themes[0].variables["loss-train"] == "#336699"  # app variables fall back to theme colours


async def test_unknown_theme_falls_back_and_says_so(project, services):
    config = project / "carexpert.toml"
    config.write_text(config.read_text() + '\n[ui]\ntheme = "no-such-theme"\n')
    app = CarExpertApp(config, services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "carexpert-dark"
        assert any("no-such-theme" in str(n.message) for n in app._notifications)


async def test_theme_chosen_live_is_written_back_with_comments_kept(project, services):
    config = project / "carexpert.toml"
    app = CarExpertApp(config, services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "carexpert-light"
        assert await wait_until(pilot, lambda: (project / "carexpert.toml.bak").exists()
                                and tomllib.loads(config.read_text()).get("ui", {}).get("theme") == "carexpert-light")
    text = config.read_text()
    assert tomllib.loads(text)["ui"]["theme"] == "carexpert-light"
    assert "# my carexpert config: comments must survive the editor" in text
    assert (project / "carexpert.toml.bak").exists()
