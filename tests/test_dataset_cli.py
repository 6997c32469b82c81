"""``carexpert data build|preview|stats|validate``: real commands, in-process, on a temp folder."""

from __future__ import annotations

import json

import pytest
from test_dataset_tokenization import tiny_tokenizer

from carexpert.cli.main import main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAREXPERT_CONFIG", raising=False)
    return tmp_path


def test_build_writes_the_splits_and_reports_the_mix(workdir, capsys):
    assert main(["data", "build", "--num-examples", "400", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "manifest.json"):
        assert (workdir / "data" / name).exists()
    manifest = json.loads((workdir / "data" / "manifest.json").read_text())
    assert manifest["num_examples_generated"] == 400 and manifest["seed"] == 5
    assert "category mix" in out and "advanced_tech" in out and manifest["fingerprint"] in out


def test_preview_and_stats(workdir, capsys):
    assert main(["data", "preview", "-n", "1", "--category", "maintenance"]) == 0
    out = capsys.readouterr().out
    assert "in memory" in out and "Q:" in out and "A:" in out and "maintenance" in out
    assert main(["data", "stats"]) == 0
    out = capsys.readouterr().out
    assert "p95" in out and "estimate" in out and "target" in out


def test_stats_with_a_tokenizer_folder(workdir, capsys):
    tiny_tokenizer().save_pretrained(workdir / "tok")
    (workdir / "carexpert.toml").write_text("[data]\nnum_examples = 200\n")
    assert main(["data", "stats", "--tokenizer", str(workdir / "tok")]) == 0
    assert "lengths: tokenizer from" in capsys.readouterr().out
    (workdir / "carexpert.toml").write_text(f"[model]\nbase_model = '{workdir / 'tok'}'\n[data]\nnum_examples = 200\n")
    assert main(["data", "stats"]) == 0  # a local model folder's tokenizer is used without asking
    assert "lengths: tokenizer from" in capsys.readouterr().out


def test_validate_exits_2_with_line_numbers_and_0_when_clean(workdir, capsys):
    bad = workdir / "bad.jsonl"
    bad.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2"}\nnot json\n')
    assert main(["data", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2: missing field 'output'" in err and "bad.jsonl:3: invalid JSON" in err
    assert "Traceback" not in err
    good = workdir / "good.jsonl"
    good.write_text('{"instruction": "q", "output": "a"}\n')
    assert main(["data", "validate", str(good)]) == 0
    assert "1 records loaded" in capsys.readouterr().out


def test_a_bad_tokenizer_path_is_a_clean_error(workdir, capsys):
    assert main(["data", "stats", "--tokenizer", str(workdir / "missing")]) == 2
    assert "cannot load a tokenizer" in capsys.readouterr().err
