"""Fixtures for the app's tests: a project folder with a config, fake services, frozen cursors."""

from __future__ import annotations

import pytest
import textual.constants
from textual.widgets import Input, TextArea

from tests.tui.doubles import fake_services

CONFIG_TEXT = """\
# my carexpert config: comments must survive the editor
[model]
base_model = "embedded"   # the offline default

[train]
runs_dir = "runs"
batch_size = 4
grad_accum = 4
epochs = 3.0
"""


@pytest.fixture(autouse=True)
def steady_cursors(monkeypatch):
    """No blinking cursors and no animations: snapshots see the same frame every time."""
    monkeypatch.setattr(textual.constants, "TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None, raising=False)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project folder (the cwd) with a commented carexpert.toml."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "carexpert.toml"
    config.write_text(CONFIG_TEXT, encoding="utf-8")
    (tmp_path / "runs").mkdir()
    return tmp_path


@pytest.fixture
def services():
    return fake_services()
