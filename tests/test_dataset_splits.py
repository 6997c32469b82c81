"""Splits: stratified, deterministic, no leakage, written atomically with a content fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from carexpert.dataset import build_builtin, leakage, read_splits, write_data
from carexpert.dataset.records import normalize_question
from carexpert.dataset.showcase import showcase_cases, showcase_fact_ids
from carexpert.dataset.splits import build_splits, held_out_facts
from carexpert.errors import UserError


@pytest.fixture(scope="module")
def built():
    return build_builtin(1600, seed=42)


def test_default_build_has_1500_plus_pairs_in_all_splits(built):
    counts = {name: len(rows) for name, rows in built.splits.items()}
    assert sum(counts.values()) >= 1500
    assert counts["train"] > 1000 and counts["validation"] > 100 and counts["test"] > 150
    assert len({c for r in built.splits["train"] for c in [r["category"]]}) == 8


def test_no_test_question_or_held_out_fact_reaches_training(built):
    held = held_out_facts(built.training_records() + built.splits["test"], 0.1, 42, showcase_fact_ids())
    assert held
    found = leakage(built.splits, held)
    assert found == {"questions": [], "facts": []}
    train_keys = {normalize_question(r["instruction"], r["input"]) for r in built.training_records()}
    for record in built.splits["test"]:
        assert normalize_question(record["instruction"], record["input"]) not in train_keys
    training_facts = {f for r in built.training_records() for f in r["fact_ids"]}
    assert not held & training_facts


def test_test_set_mixes_unseen_facts_unseen_questions_and_the_showcase(built):
    kinds = Counter(r["holdout"] for r in built.splits["test"])
    assert kinds["fact"] > 50 and kinds["question"] > 100 and kinds["showcase"] == len(showcase_cases())
    showcase_facts = showcase_fact_ids()
    training_facts = {f for r in built.training_records() for f in r["fact_ids"]}
    assert showcase_facts <= training_facts  # the showcase topics are learned, only the exact questions are held


def test_validation_is_about_ten_percent_of_each_category(built):
    train = Counter(r["category"] for r in built.splits["train"])
    validation = Counter(r["category"] for r in built.splits["validation"])
    for category, n in train.items():
        share = validation[category] / (n + validation[category])
        assert 0.07 <= share <= 0.13, category


def test_splits_are_deterministic(built):
    again = build_builtin(1600, seed=42)
    assert again.splits == built.splits
    assert build_builtin(1600, seed=43).splits["test"] != built.splits["test"]


def test_same_question_is_never_split_across_sides():
    records = [{"id": f"u{i}", "instruction": "What is torque?" if i < 3 else f"Question {i}?", "input": "",
                "output": f"answer {i}", "category": "user", "fact_ids": []} for i in range(60)]
    splits = build_splits(records, validation_fraction=0.2, test_fraction=0.2, holdout_fact_fraction=0.0, seed=1)
    sides = [name for name, rows in splits.items() for r in rows if r["instruction"] == "What is torque?"]
    assert len(sides) == 3 and len(set(sides)) == 1


def test_write_splits_files_manifest_and_fingerprint(built, tmp_path):
    manifest = write_data(built, tmp_path)
    files = {name: (tmp_path / f"{name}.jsonl").read_bytes() for name in ("train", "validation", "test")}
    assert manifest["counts"] == {name: len(rows) for name, rows in built.splits.items()}
    for name, payload in files.items():
        assert len(payload.decode().splitlines()) == manifest["counts"][name]
    expected = hashlib.sha256(b"".join(hashlib.sha256(files[n]).digest() for n in ("train", "validation", "test")))
    assert manifest["fingerprint"] == expected.hexdigest()
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["category_mix"]["train"]["specs"] == manifest["category_mix"]["train"]["specs"]
    assert on_disk["held_out_facts"] and on_disk["seed"] == 42
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    assert read_splits(tmp_path) == built.splits
    assert write_data(built, tmp_path)["fingerprint"] == manifest["fingerprint"]


def test_reading_a_changed_or_missing_file_is_a_user_error(built, tmp_path):
    write_data(built, tmp_path)
    with (tmp_path / "train.jsonl").open("a") as handle:
        handle.write('{"instruction": "x", "output": "y"}\n')
    with pytest.raises(UserError, match="changed since it was built"):
        read_splits(tmp_path)
    (tmp_path / "test.jsonl").unlink()
    with pytest.raises(UserError, match="test.jsonl is missing"):
        read_splits(tmp_path, verify=False)
    with pytest.raises(UserError, match="data build"):
        read_splits(tmp_path / "nowhere")


def test_fractions_out_of_range_are_refused():
    with pytest.raises(UserError, match="test_fraction"):
        build_splits([], test_fraction=1.5)
