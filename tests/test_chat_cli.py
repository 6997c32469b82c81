"""``carexpert chat`` driven through stdin, as a user on a pipe or over SSH would."""

from __future__ import annotations

import os
import subprocess
import sys


def run_chat(args, stdin, cwd):
    env = {**os.environ, "CAREXPERT_CONFIG": "", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "carexpert.cli.main", "chat", *args], input=stdin,
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


def test_chat_cli_answers_from_stdin_and_runs_commands(tiny_model_dir, tmp_path):
    config = tmp_path / "carexpert.toml"
    config.write_text(f'[model]\nbase_model = "{tiny_model_dir}"\n[chat]\nmax_new_tokens = 12\ntemperature = 0.0\n')
    script = "How much torque does a Camry make?\n/set top_k 7\n/settings\n/retry\n/save talk\n/nope\n/quit\n"
    done = run_chat(["--base", "--config", str(config)], script, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert output.count("carexpert> ") == 2 and "12 tokens" in output
    assert "top_k = 7" in output and "unknown command /nope" in output
    assert (tmp_path / "talk.jsonl").is_file() and (tmp_path / "talk.md").is_file()
    assert "\x1b" not in done.stdout  # not a terminal: plain text


def test_chat_cli_without_a_run_explains_what_to_do(tiny_model_dir, tmp_path):
    config = tmp_path / "carexpert.toml"
    config.write_text(f'[model]\nbase_model = "{tiny_model_dir}"\n[train]\nruns_dir = "{tmp_path / "runs"}"\n')
    done = run_chat(["--config", str(config)], "/quit\n", tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no finished run with an adapter" in done.stderr and "--base" in done.stderr
