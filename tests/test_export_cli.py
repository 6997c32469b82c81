"""``carexpert export`` end to end on a run folder holding a tiny adapter."""

from __future__ import annotations

import os
import subprocess
import sys

from test_export import make_adapter

from carexpert.runs.paths import RunPaths, mark_run_folder


def test_export_cli_writes_verified_merged_and_gguf_and_refuses_to_overwrite(tiny_model_dir, tmp_path):
    run = tmp_path / "runs" / "run-1"
    make_adapter(tiny_model_dir, run / "adapter")
    (run / "config.toml").write_text(f'[model]\nbase_model = "{tiny_model_dir}"\nquantization = "none"\n')
    mark_run_folder(RunPaths(run))  # carexpert's own run marker: export acts only on run folders
    (tmp_path / "carexpert.toml").write_text(f'[train]\nruns_dir = "{tmp_path / "runs"}"\n')
    env = {**os.environ, "CAREXPERT_CONFIG": str(tmp_path / "carexpert.toml")}
    command = [sys.executable, "-m", "carexpert.cli.main", "export", "run-1", "--merged", "out", "--gguf", "out.gguf"]

    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "mismatch" not in done.stdout
    assert "wrote out" in done.stdout and "wrote out.gguf" in done.stdout
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out.gguf").is_file()

    again = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
