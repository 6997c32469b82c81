"""Findings 3, 5, 6, 7 (config backup), 9 and the input items of 10 and 11: every input read
whole has a size and type limit, text from disk never reaches the terminal as controls or
markup, deep nesting and odd files are plain messages with exit status 2."""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import time

import pytest
from hostile_support import cli, cli_process, make_run, project

from carexpert.runs import RunStatus, write_status

OSC_TITLE = "\x1b]0;pwned\x07"
CSI_CLEAR = "\x1b[2J"


# --- finding 3: unbounded inputs -------------------------------------------------------------

def test_finding_3_an_oversized_question_is_refused_before_it_is_saved(tmp_path, capsys):
    config = project(tmp_path, f'[data]\ndata_dir = "{tmp_path / "data"}"\n')
    code, _, err = cli(capsys, "eval", "add-case", "--question", "why " * 32_000, "-c", config)
    assert code == 2 and "characters; at most" in err
    assert not (tmp_path / "data" / "eval_cases.jsonl").exists()


def test_finding_3_an_oversized_question_in_the_cases_file_is_named_by_line(tmp_path):
    from carexpert.errors import UserError
    from carexpert.evaluation.cases import load_user_cases

    cases = tmp_path / "eval_cases.jsonl"
    cases.write_text(json.dumps({"instruction": "ok?"}) + "\n" + json.dumps({"instruction": "x" * 128_000}) + "\n")
    with pytest.raises(UserError) as caught:
        load_user_cases(cases)
    assert caught.value.where == f"{cases}:2" and "characters" in caught.value.message


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_finding_3_a_device_as_base_model_is_refused_by_validate_and_estimate(tmp_path, capsys, device):
    config = project(tmp_path, f'[model]\nbase_model = "{device}"\n')
    code, _, err = cli(capsys, "config", "validate", "--no-probe", "-c", config)
    assert code == 2 and "not a regular file" in err
    started = time.monotonic()
    code, _, err = cli(capsys, "estimate", "-c", config)
    assert code == 2 and "not a regular file" in err and time.monotonic() - started < 10


def test_finding_3_evaluation_cuts_an_over_long_prompt_to_the_models_context(tiny_model_dir):
    pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from carexpert.evaluation.generate import (
        build_prompts,
        generate_answers,
        prompt_token_limit,
    )

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    seen: list[int] = []
    real_generate = model.generate

    def recording_generate(**kwargs):
        seen.append(kwargs["input_ids"].shape[1])
        return real_generate(**kwargs)

    model.generate = recording_generate
    prompts = build_prompts([("torque " * 3000 + "How much horsepower?", ""), ("Short one?", "")], system=None)
    answers = generate_answers(model, tokenizer, prompts, max_new_tokens=4, batch_size=2)
    limit = prompt_token_limit(model, tokenizer, 4)
    assert limit == 1024 - 4 and len(answers) == 2
    assert seen and max(seen) <= limit  # 3,000 repeated words are far more than 1,020 tokens
    assert tokenizer.truncation_side == "right"  # restored for the next user


# --- finding 5: terminal injection -----------------------------------------------------------

def _no_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text


def test_finding_5_status_and_events_text_reaches_the_terminal_without_controls(tmp_path, capsys):
    config = project(tmp_path)
    paths = make_run(tmp_path / "runs", "run-evil", "failed", host=f"box{OSC_TITLE}",
                     error=f"bad[/] [bold red]thing{OSC_TITLE}{CSI_CLEAR}",
                     advice=[{"text": f"try {OSC_TITLE}[/]", "changes": {}}])
    from carexpert.runs.events import EventWriter

    with EventWriter(paths.events) as events:
        events.emit("notice", message=f"note [/]{OSC_TITLE}")
        events.emit("status", state="failed", error=f"bad[/] [bold red]thing{OSC_TITLE}", advice=[])
        events.emit("step", step="3[/]", loss=f"{OSC_TITLE}", lr="x", epoch="y")
    for argv in (("runs", "list"), ("runs", "show", "run-evil"), ("runs", "stop", "run-evil")):
        code, out, err = cli(capsys, *argv, "-c", config)
        assert code in (0, 2), err
        _no_controls(out + err)
    code, out, _ = cli(capsys, "runs", "show", "run-evil", "-c", config)
    assert "bad[/] [bold red]thing" in out and "note [/]" in out  # shown as written, not as markup


def test_finding_5_eval_categories_and_config_key_names_are_shown_as_text(tmp_path, capsys):
    config = project(tmp_path)
    paths = make_run(tmp_path / "runs", "run-eval", "finished")
    result = paths.eval / "20260101-000000"
    result.mkdir(parents=True)
    block = {"n": 1, "base": None, "tuned": {"score": 0.5}}
    (result / "summary.json").write_text(json.dumps({
        "run_id": f"run-eval{OSC_TITLE}", "categories": {f"specs{OSC_TITLE}[/]": block, "x": {"n": "[/]"}},
        "overall": {"base": None, "tuned": {"score": "0.5[/]"}}, "n_items": 1, "model": f"m{CSI_CLEAR}", "version": 1}))
    (result / "items.jsonl").write_text(json.dumps({"id": f"i{OSC_TITLE}", "category": "[/]", "tuned_answer":
                                                    f"answer{CSI_CLEAR}[/]", "tuned": {"verdict": "[/]"}}) + "\n")
    code, out, err = cli(capsys, "eval", "show", "run-eval", "--items", "-c", config)
    assert code == 0, err
    _no_controls(out)
    assert "specs[/]" in out
    code, out, err = cli(capsys, "config", "set", f"train.batch{OSC_TITLE}=3", "-c", config)
    assert code == 2
    _no_controls(out + err)


# --- finding 6: datasets that are not regular files ------------------------------------------

def test_finding_6_a_fifo_as_dataset_is_refused_at_once(tmp_path, tiny_model_dir):
    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    config = project(tmp_path, f'[data]\ndataset = "{fifo}"\n[model]\nbase_model = "{tiny_model_dir}"\n')
    for argv in (("data", "validate", fifo), ("data", "stats", "-c", config), ("train", "--detach", "-c", config)):
        done = cli_process(*argv, cwd=tmp_path, timeout=120)  # before the fix: hangs until the timeout
        assert done.returncode == 2, done.stderr
        assert "not a regular file" in done.stderr
    assert not any((tmp_path / "runs").iterdir())  # no run was started


# --- finding 7: the config backup on a full disk -----------------------------------------------

def test_finding_7_config_set_on_a_full_disk_keeps_the_old_backup_whole(tmp_path, capsys, monkeypatch):
    config = project(tmp_path)
    backup = tmp_path / "carexpert.toml.bak"
    backup.write_text("# the previous backup, 1 KB\n" + "#" * 1024 + "\n")
    before_backup, before_config = backup.read_text(), config.read_text()
    real_fsync = os.fsync

    def full_disk(fd):  # the first write that needs space fails, as on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    code, _, err = cli(capsys, "config", "set", "train.batch_size=8", "-c", config)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert code == 2 and "No space left on device" in err and "bug" not in err
    assert backup.read_text() == before_backup and config.read_text() == before_config
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- finding 9: deep nesting -----------------------------------------------------------------

DEEP_TOML = "a = " + "[" * 10_000 + "]" * 10_000 + "\n"
DEEP_JSON = "[" * 10_000 + "]" * 10_000


def test_finding_9_deeply_nested_toml_and_json_are_plain_messages(tmp_path, capsys):
    config = tmp_path / "deep.toml"
    config.write_text(DEEP_TOML)
    code, _, err = cli(capsys, "config", "validate", "--no-probe", "-c", config)
    assert code == 2 and "nested too deeply" in err
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n" + DEEP_JSON + "\n")
    code, out, err = cli(capsys, "data", "validate", data)
    assert code == 2 and "data.jsonl:2" in out + err and "nested too deeply" in out + err
    good = project(tmp_path / "p")
    run = make_run(tmp_path / "p" / "runs", "run-deep")
    run.status.write_text(DEEP_JSON)
    (run.events).write_text(DEEP_JSON + "\n")
    code, out, err = cli(capsys, "runs", "list", "-c", good)
    assert code == 0 and "run-deep" in out and "unknown" in out
    cases = tmp_path / "p" / "data" / "eval_cases.jsonl"
    cases.parent.mkdir()
    cases.write_text(DEEP_JSON + "\n")
    good.write_text(good.read_text() + f'[data]\ndata_dir = "{cases.parent}"\n')
    code, _, err = cli(capsys, "eval", "add-case", "--question", "What is a CVT?", "-c", good)
    assert code == 2 and "eval_cases.jsonl:1" in err and "nested too deeply" in err


# --- finding 10: what used to be "unexpected error, this is a bug" -------------------------------

@pytest.mark.parametrize("kind", ["loop", "no-config", "proc-mem", "random-safetensors", "random-gguf", "empty-config"])
def test_finding_10_estimate_and_validate_on_a_base_model_that_cannot_work(tmp_path, capsys, kind):
    target = {"loop": tmp_path / "loop", "no-config": tmp_path / "folder", "proc-mem": "/proc/self/mem",
              "random-safetensors": tmp_path / "model.safetensors", "random-gguf": tmp_path / "model.gguf",
              "empty-config": tmp_path / "model"}[kind]
    if kind == "loop":
        target.symlink_to(target)
    elif kind == "no-config":
        target.mkdir()
    elif kind in ("random-safetensors", "random-gguf"):
        target.write_bytes(os.urandom(4096))
    elif kind == "empty-config":
        target.mkdir()
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_bytes(b"")
    config = project(tmp_path, f'[model]\nbase_model = "{target}"\n')
    code, _, err = cli(capsys, "estimate", "-c", config)
    assert code == 2 and "bug" not in err and "model.base_model" in err, err
    if kind != "empty-config":  # a folder with a config.json and weights passes the offline check
        code, _, err = cli(capsys, "config", "validate", "--no-probe", "-c", config)
        assert code == 2 and "base_model cannot work" in err, err


def test_finding_10_config_set_and_train_in_a_read_only_place(tmp_path, capsys, monkeypatch):
    config = project(tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, _, err = cli(capsys, "config", "set", "train.batch_size=8", "-c", config)
    assert code == 2 and "Read-only file system" in err and "bug" not in err
    monkeypatch.undo()
    import carexpert.training.start as start

    monkeypatch.setattr(start, "start_new_run", read_only)
    code, _, err = cli(capsys, "train", "--detach", "-c", config)
    assert code == 2 and "Read-only file system" in err and "writable location" in err


def test_finding_10_chat_with_stdin_closed_says_so_before_loading(tmp_path):
    import subprocess
    import sys

    from hostile_support import REPO

    done = subprocess.run(["sh", "-c", 'exec "$0" -m carexpert.cli.main chat --base 0<&-', sys.executable],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "standard input is closed" in done.stderr


# --- finding 11: smaller ones ----------------------------------------------------------------

def test_finding_11_a_toml_file_with_a_bom_names_the_bom(tmp_path, capsys):
    config = tmp_path / "bom.toml"
    config.write_bytes(b"\xef\xbb\xbf[train]\nbatch_size = 2\n")
    code, _, err = cli(capsys, "config", "validate", "--no-probe", "-c", config)
    assert code == 2 and "byte-order mark (BOM)" in err and "without BOM" in err


def test_finding_11_a_read_only_config_is_refused_not_replaced(tmp_path, capsys):
    config = project(tmp_path)
    before = config.read_text()
    config.chmod(stat.S_IRUSR | stat.S_IRGRP)
    try:
        code, _, err = cli(capsys, "config", "set", "train.batch_size=8", "-c", config)
    finally:
        config.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert code == 2 and "read-only" in err and "chmod u+w" in err
    assert config.read_text() == before and not (tmp_path / "carexpert.toml.bak").exists()


@pytest.mark.parametrize("term", ["|", " | ", "?!|", "(...)"])
def test_finding_11_a_key_term_without_a_word_is_refused(tmp_path, capsys, term):
    config = project(tmp_path, f'[data]\ndata_dir = "{tmp_path / "data"}"\n')
    code, _, err = cli(capsys, "eval", "add-case", "--question", "What is a CVT?", "--key-terms", term, "-c", config)
    assert code == 2 and "holds no word" in err
    assert not (tmp_path / "data" / "eval_cases.jsonl").exists()


def test_finding_8_status_with_a_wrong_state_or_huge_size_is_unknown(tmp_path, capsys):
    config = project(tmp_path)
    paths = make_run(tmp_path / "runs", "run-odd")
    write_status(paths.status, RunStatus(state="finished"))
    data = json.loads(paths.status.read_text())
    data["state"] = f"running{OSC_TITLE}"
    paths.status.write_text(json.dumps(data))
    code, out, _ = cli(capsys, "runs", "list", "-c", config)
    assert code == 0 and "unknown" in out
    _no_controls(out)
