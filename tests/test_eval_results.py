"""The results files (write + load round trip, atomic folders, version 1 files read as version 2) and user
eval cases."""

from __future__ import annotations

import json

import pytest

from carexpert.errors import UserError
from carexpert.evaluation.cases import add_user_case, case_from_record, dedupe, load_user_cases
from carexpert.evaluation.results import (
    ITEMS_FILE,
    SUMMARY_FILE,
    find_result,
    load_results,
    write_results,
)
from carexpert.runs import RunPaths
from carexpert.runs.artifacts import eval_results

SIDE = {"score": 0.5, "correct_rate": 0.5, "numeric_accuracy": 1.0, "concept_coverage": None,
        "refusal_rate": 0.0, "clean_stop_rate": 1.0, "repetition_rate": 0.0, "mean_length": 12.0}
NO_RAG = {"base_rag": None, "tuned_rag": None}


def sample_summary(run_id="r1"):
    """A version 2 summary with the two closed-book sides."""
    return {"version": 2, "run_id": run_id, "created": "2026-11-25T10:00:00+00:00", "model": "embedded",
            "adapter": "runs/r1/adapter", "config": {"eval": {"max_new_tokens": 200}},
            "dataset_fingerprint": "f00", "n_items": 1, "sides": ["base_closed", "tuned_closed"],
            "timings": {"load_s": 1.0, "retrieval_s": None, "base_closed_s": 2.0, "tuned_closed_s": 2.0,
                        "total_s": 5.0},
            "val_loss": {"base": 2.5, "tuned": 1.5}, "perplexity": {"base": 12.18, "tuned": 4.48},
            "categories": {"specs": {"n": 1, "base_closed": SIDE, "tuned_closed": SIDE, **NO_RAG}},
            "overall": {"base_closed": SIDE, "tuned_closed": SIDE, **NO_RAG}}


def v1_summary(run_id="r1"):
    """A summary as version 1 wrote it (before retrieval): sides "base" and "tuned"."""
    return {"version": 1, "run_id": run_id, "created": "2026-11-25T10:00:00+00:00", "model": "embedded",
            "adapter": "runs/r1/adapter", "config": {"eval": {"max_new_tokens": 200}},
            "dataset_fingerprint": "f00", "n_items": 1,
            "timings": {"load_s": 1.0, "base_s": 2.0, "tuned_s": 2.0, "total_s": 5.0},
            "val_loss": {"base": 2.5, "tuned": 1.5}, "perplexity": {"base": 12.18, "tuned": 4.48},
            "categories": {"specs": {"n": 1, "base": SIDE, "tuned": SIDE}},
            "overall": {"base": SIDE, "tuned": SIDE}}


EXPECTED = {"reference": {"hp": 203.0}, "key_terms": [], "expect_refusal": False}
ITEM_V1 = {"id": "s1", "category": "specs", "question": "Camry hp?", "reference": "203 hp", "expected": EXPECTED,
           "base_answer": "It is a car.", "tuned_answer": "203 hp — “quoted”",
           "base": {"verdict": "wrong", "score": 0.0}, "tuned": {"verdict": "correct", "score": 1.0}}
ITEM = {"id": "s1", "category": "specs", "question": "Camry hp?", "reference": "203 hp", "expected": EXPECTED,
        "retrieved": None, "unknown": None,
        "base_closed_answer": "It is a car.", "tuned_closed_answer": "203 hp — “quoted”",
        "base_closed": {"verdict": "wrong", "score": 0.0}, "tuned_closed": {"verdict": "correct", "score": 1.0},
        "base_rag_answer": None, "base_rag": None, "tuned_rag_answer": None, "tuned_rag": None}


def write_v1(eval_dir, summary, items, name):
    """A result folder exactly as a version 1 carexpert left it."""
    folder = eval_dir / name
    folder.mkdir(parents=True)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary), encoding="utf-8")
    (folder / ITEMS_FILE).write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return folder


def test_write_and_load_round_trip(tmp_path):
    run = RunPaths(tmp_path / "r1")
    path = write_results(run.eval, sample_summary(), [ITEM], name="20261125-100000")
    assert path == run.eval / "20261125-100000"
    assert sorted(p.name for p in path.iterdir()) == [ITEMS_FILE, SUMMARY_FILE]
    loaded = load_results(path)
    assert loaded.summary == sample_summary() and loaded.items == [ITEM]
    assert not [p for p in run.eval.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_version_1_results_are_read_as_version_2(tmp_path):
    run = RunPaths(tmp_path / "r1")
    folder = write_v1(run.eval, v1_summary(), [ITEM_V1, {**ITEM_V1, "base": None, "base_answer": None}],
                      "20261125-100000")
    loaded = load_results(folder)
    summary = loaded.summary
    assert summary["version"] == 2 and summary["upgraded_from"] == 1
    assert summary["sides"] == ["base_closed", "tuned_closed"]
    assert summary["overall"] == {"base_closed": SIDE, "tuned_closed": SIDE}
    assert summary["categories"]["specs"] == {"n": 1, "base_closed": SIDE, "tuned_closed": SIDE}
    assert summary["timings"] == {"load_s": 1.0, "base_closed_s": 2.0, "tuned_closed_s": 2.0, "total_s": 5.0}
    first, second = loaded.items
    assert first["tuned_closed"] == ITEM_V1["tuned"] and first["base_closed_answer"] == "It is a car."
    assert first["retrieved"] is None and "tuned" not in first and "base_answer" not in first
    assert second["base_closed"] is None and second["base_closed_answer"] is None
    assert json.loads((folder / SUMMARY_FILE).read_text())["version"] == 1  # the file itself is left alone
    assert eval_results(run) == [folder] and find_result(run) == folder


def test_same_second_gets_a_new_folder_and_newest_is_listed_first(tmp_path):
    run = RunPaths(tmp_path / "r1")
    first = write_results(run.eval, sample_summary(), [ITEM], name="20261125-100000")
    second = write_results(run.eval, sample_summary(), [ITEM], name="20261125-100000")
    third = write_results(run.eval, sample_summary(), [], name="20261126-080000")
    (run.eval / ".20261127-000000.tmp").mkdir()  # an evaluation being written now
    (run.eval / "20261127-000000").mkdir()  # or a crashed one: no summary, not listed
    assert second.name == "20261125-100000-2"
    assert eval_results(run) == [third, second, first]
    assert find_result(run) == third and find_result(run, first.name) == first
    with pytest.raises(UserError, match="no result"):
        find_result(run, "nope")


def test_missing_keys_and_bad_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks keys"):
        write_results(tmp_path, {"version": 1}, [])
    folder = tmp_path / "broken"
    folder.mkdir()
    with pytest.raises(UserError, match="no summary.json"):
        load_results(folder)
    (folder / SUMMARY_FILE).write_text(json.dumps({**sample_summary(), "version": 99}))
    with pytest.raises(UserError, match="unsupported results version 99"):
        load_results(folder)
    with pytest.raises(UserError, match="has no evaluation results"):
        find_result(RunPaths(tmp_path / "empty"))


def test_user_cases_are_saved_replaced_and_loaded(tmp_path):
    path = tmp_path / "data" / "eval_cases.jsonl"
    case, replaced = add_user_case(path, "How much torque does the Camry make?", reference_text="184 lb-ft",
                                   category="specs", key_terms=["torque"])
    assert not replaced and case.id.startswith("user-")
    again, replaced = add_user_case(path, "How much  torque does the camry make?", reference_text="184 lb-ft!")
    assert replaced and again.id == case.id
    add_user_case(path, "Is the Zephyrion GT fast?", expect_refusal=True)
    loaded = load_user_cases(path)
    assert [c.question for c in loaded] == ["How much  torque does the camry make?", "Is the Zephyrion GT fast?"]
    assert loaded[0].reference_text == "184 lb-ft!" and loaded[0].category == "user"
    assert loaded[1].expect_refusal and loaded[1].source == "user"
    with pytest.raises(UserError, match="question is empty"):
        add_user_case(path, "  ")


def test_a_bad_cases_line_is_named(tmp_path):
    path = tmp_path / "eval_cases.jsonl"
    path.write_text('{"instruction": "ok?"}\n{broken\n')
    with pytest.raises(UserError) as error:
        load_user_cases(path)
    assert f"{path}:2" in error.value.render()
    path.write_text('{"instruction": ""}\n')
    with pytest.raises(UserError, match="no question"):
        load_user_cases(path)


def test_records_become_cases_and_duplicates_are_asked_once():
    record = {"id": "t1", "instruction": "Camry hp?", "input": "", "output": "203 hp", "category": "specs",
              "fact_ids": ["toyota-camry"], "reference": {"hp": 203, "make": "Toyota", "msrp_usd": "28,400"},
              "key_terms": [], "expect_refusal": False}
    case = case_from_record(record)
    assert case.reference == {"hp": 203.0, "msrp_usd": 28400.0} and case.reference_text == "203 hp"
    showcase = case_from_record({**record, "id": "show1", "instruction": "camry  HP?"}, source="showcase")
    assert [c.id for c in dedupe([case, showcase])] == ["t1"]
