"""The installed ``carexpert-tui`` in a real terminal (tmux): it draws, switches modes, quits.

Skipped when tmux or the entry point is missing. Keys go in with ``send-keys`` and the screen
comes back with ``capture-pane``; nothing is mocked, so this is what a user over SSH sees.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.tui.conftest import CONFIG_TEXT
from tests.tui.doubles import FIXTURE_RUNS

pytestmark = pytest.mark.skipif(not (shutil.which("tmux") and shutil.which("carexpert-tui")),
                                reason="needs tmux and the installed carexpert-tui")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def wait_for_screen(session: str, *texts: str, timeout: float = 30.0) -> str:
    """The pane's text once every one of ``texts`` is on it (the last capture on timeout)."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if all(text in screen for text in texts):
            return screen
        time.sleep(0.2)
    return screen


SMALL_MODEL_CONFIG = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "vocab_size": 512}


def test_installed_app_in_a_real_terminal(tmp_path):
    # A model folder with just a config.json keeps the Config screen's shape read instant.
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(SMALL_MODEL_CONFIG), encoding="utf-8")
    (tmp_path / "carexpert.toml").write_text(CONFIG_TEXT.replace('"embedded"', f'"{tmp_path / "model"}"'),
                                             encoding="utf-8")
    shutil.copytree(FIXTURE_RUNS, tmp_path / "runs")
    session = f"carexpert-tui-test-{uuid.uuid4().hex[:8]}"
    command = f"cd {tmp_path} && TERM=xterm-256color carexpert-tui; echo APP-EXITED-$?; sleep 30"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
    try:
        screen = wait_for_screen(session, "carexpert check", "alt+1 System")
        assert "carexpert check" in screen and "model · none" in screen, screen
        tmux("send-keys", "-t", session, "3")
        screen = wait_for_screen(session, "Runs", "run-20261125-101500-ab12")
        assert "finished" in screen and "s Start" in screen, screen
        tmux("send-keys", "-t", session, "4")
        screen = wait_for_screen(session, "score 0.44 → 0.94")
        assert "Summary" in screen and "specs" in screen, screen
        tmux("send-keys", "-t", session, "2")
        screen = wait_for_screen(session, "carexpert.toml · saved")
        assert "base_model" in screen, screen
        tmux("send-keys", "-t", session, "C-q")
        screen = wait_for_screen(session, "APP-EXITED-0", timeout=15)
        assert "APP-EXITED-0" in screen, screen
    finally:
        tmux("kill-session", "-t", session)


def test_alt_number_switches_modes_from_a_text_field_in_a_real_terminal(tmp_path):
    """alt+digit arrives as ESC + digit from a classic terminal: it must switch modes, not type."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(SMALL_MODEL_CONFIG), encoding="utf-8")
    (tmp_path / "carexpert.toml").write_text(CONFIG_TEXT.replace('"embedded"', f'"{tmp_path / "model"}"'),
                                             encoding="utf-8")
    session = f"carexpert-tui-test-{uuid.uuid4().hex[:8]}"
    pythonpath = os.environ.get("PYTHONPATH", "")  # a checkout under test, when one is set
    command = (f"cd {tmp_path} && PYTHONPATH={pythonpath} TERM=xterm-256color carexpert-tui --mode chat; "
               "echo APP-EXITED-$?; sleep 30")
    tmux("new-session", "-d", "-s", session, "-x", "110", "-y", "30", command)
    try:
        screen = wait_for_screen(session, "Ask about cars", "alt+3 Train")
        assert "alt+1 System" in screen, screen
        tmux("send-keys", "-t", session, "-l", "a £30k car")
        screen = wait_for_screen(session, "a £30k car")
        tmux("send-keys", "-t", session, "M-3")
        screen = wait_for_screen(session, "s Start")
        assert "Select a run" in screen and "a £30k car3" not in screen, screen
        tmux("send-keys", "-t", session, "M-5")
        screen = wait_for_screen(session, "a £30k car")
        assert "a £30k car" in screen and "s Start" not in screen, screen
        tmux("send-keys", "-t", session, "C-q")
        assert "APP-EXITED-0" in wait_for_screen(session, "APP-EXITED-0", timeout=15)
    finally:
        tmux("kill-session", "-t", session)
