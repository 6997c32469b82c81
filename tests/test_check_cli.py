"""``carexpert check``: the JSON schema scripts rely on, the table, and the exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from carexpert.cli.main import main


def write_config(path, base_model: str, runs_dir) -> str:
    path.write_text(f'[model]\nbase_model = "{base_model}"\n\n[train]\nruns_dir = "{runs_dir}"\n')
    return str(path)


def test_check_json_schema(tiny_model_dir, tmp_path):
    config = write_config(tmp_path / "carexpert.toml", str(tiny_model_dir), tmp_path / "runs")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "carexpert.cli.main", "check", "--json", "--config", config],
                         check=False, capture_output=True, text=True, timeout=300, env=env)
    report = json.loads(out.stdout)
    assert set(report) == {"version", "checks", "summary"} and report["version"] == 1
    assert report["checks"] and all(set(c) == {"name", "status", "detail", "fix"} for c in report["checks"])
    assert all(c["status"] in ("pass", "warn", "fail") and isinstance(c["detail"], str) for c in report["checks"])
    statuses = [c["status"] for c in report["checks"]]
    assert report["summary"] == {s: statuses.count(s) for s in ("pass", "warn", "fail")}
    assert out.returncode == (1 if report["summary"]["fail"] else 0)
    names = {c["name"] for c in report["checks"]}
    assert {"python", "torch", "bitsandbytes 4-bit", "model", "disk", "ram"} <= names


def test_check_exits_1_when_a_check_fails(tmp_path, capsys):
    config = write_config(tmp_path / "carexpert.toml", str(tmp_path / "missing-model"), tmp_path / "runs")
    assert main(["check", "--json", "--config", config]) == 1
    report = json.loads(capsys.readouterr().out)
    model = next(c for c in report["checks"] if c["name"] == "model")
    assert model["status"] == "fail" and "missing-model" in model["detail"] and model["fix"]


def test_check_table_lists_every_check(tiny_model_dir, tmp_path, capsys):
    config = write_config(tmp_path / "carexpert.toml", str(tiny_model_dir), tmp_path / "runs")
    code = main(["check", "--config", config])
    out = capsys.readouterr().out
    assert "carexpert check" in out and "bitsandbytes 4-bit" in out
    assert "passed" in out and "failed" in out
    assert code == (1 if " 0 failed" not in out else 0)


def test_bad_config_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "carexpert.toml"
    bad.write_text("[model]\nquantisation = 'nf4'\n")
    assert main(["check", "--config", str(bad)]) == 2
    assert "did you mean 'quantization'" in capsys.readouterr().err
