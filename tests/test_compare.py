"""Run comparison from run folders: curves, config diff, eval summaries."""

from __future__ import annotations

import json
import subprocess
import sys

from carexpert.config import Config, write_frozen_config
from carexpert.runs import EventWriter, RunPaths
from carexpert.runs.compare import compare_runs


def make_run(runs_dir, run_id, lr, losses, val=None, score=None):
    paths = RunPaths.of(runs_dir, run_id)
    paths.root.mkdir(parents=True)
    config = Config()
    config.train.learning_rate = lr
    write_frozen_config(paths.config, config)
    with EventWriter(paths.events) as writer:
        for step, loss in enumerate(losses, start=1):
            writer.emit("step", step=step, loss=loss, lr=lr)
        if val is not None:
            writer.emit("eval", step=len(losses), val_loss=val, perplexity=2.0)
    if score is not None:
        folder = paths.eval / "20261125-100000"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(  # as results version 1 wrote it (read as version 2)
            {"version": 1, "categories": {"specs": {"tuned": {"score": score}}},
             "overall": {"tuned": {"score": score}}}))
    with open(paths.events, "a") as handle:  # a torn last line, as after a crash
        handle.write('{"type": "step", "st')
    return paths


def test_compare_reads_curves_diff_and_eval(tmp_path):
    make_run(tmp_path, "a", 2e-4, [2.0, 1.5, 1.0], val=1.2, score=0.5)
    make_run(tmp_path, "b", 1e-4, [2.1, 1.9], score=0.4)
    result = compare_runs(tmp_path, ["a", "b"])
    assert result["curves"][0].train == [(1, 2.0), (2, 1.5), (3, 1.0)]
    assert result["curves"][0].validation == [(3, 1.2)]
    assert result["finals"][1] == {"last_train_loss": 1.9, "best_val_loss": None, "steps": 2}
    assert result["config_diff"] == {"train.learning_rate": [2e-4, 1e-4]}
    assert result["eval"][0]["overall"]["tuned_closed"]["score"] == 0.5
    assert result["eval"][0]["sides"] == ["tuned_closed"]


def test_cli_compare_prints_tables_and_refuses_missing_runs(tmp_path):
    make_run(tmp_path, "a", 2e-4, [2.0, 1.0], score=0.5)
    make_run(tmp_path, "b", 1e-4, [2.0, 1.5], score=0.25)
    config = tmp_path / "c.toml"
    config.write_text(f'[train]\nruns_dir = "{tmp_path}"\n')
    base = [sys.executable, "-m", "carexpert.cli.main", "compare", "--config", str(config)]
    ok = subprocess.run(base + ["a", "b"], capture_output=True, text=True, env={"COLUMNS": "120", "PATH": ""})
    assert ok.returncode == 0, ok.stderr
    assert "train.learning_rate" in ok.stdout and "0.5000" in ok.stdout and "0.2500" in ok.stdout
    missing = subprocess.run(base + ["a", "zzz"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no run 'zzz'" in missing.stderr
