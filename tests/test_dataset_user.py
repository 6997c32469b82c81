"""User datasets: every bad record is named with file and line; duplicates removed; chat form works."""

from __future__ import annotations

import json

import pytest
from test_dataset_tokenization import tiny_tokenizer

from carexpert.dataset import (
    build_from_file,
    check_user_dataset,
    load_user_dataset,
    load_user_records,
)
from carexpert.errors import UserError

GOOD = {"instruction": "What is a CVT?", "input": "", "output": "A gearbox with pulleys instead of gears."}


def write_jsonl(path, lines):
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def problems_of(path, **kwargs):
    return check_user_dataset(path, **kwargs)[1].problems


@pytest.mark.parametrize("line, message", [
    ('{"output": "x"}', "missing field 'instruction'"),
    ('{"instruction": "x"}', "missing field 'output'"),
    ('{"foo": 1}', "missing fields 'instruction' and 'output'"),
    ('{"instruction": "  ", "output": "x"}', "field 'instruction' is empty"),
    ('{"instruction": "x", "output": 42}', "field 'output' must be text, got a number"),
    ('{"instruction": ["x"], "output": "y"}', "field 'instruction' must be text, got a list"),
    ('{"instruction": "x", "output": "y", "input": 3}', "field 'input' must be text"),
    ('[1, 2]', "expected a JSON object"),
    ('{"instruction": "x", "output": "y",}', "invalid JSON"),
    ('{"messages": "hi"}', "'messages' must be a list"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "must end with an assistant turn"),
    ('{"messages": [{"role": "bot", "content": "hi"}]}', "role must be one of"),
    ('{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}', "'content' is empty"),
    ('{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}',
     "expected a user turn"),
])
def test_each_bad_record_kind_names_its_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "data.jsonl", [json.dumps(GOOD), line, json.dumps(dict(GOOD, output="other"))])
    problems = problems_of(path)
    assert len(problems) == 1 and problems[0].startswith("data.jsonl:2: ") and message in problems[0], problems


def test_bad_encoding_binary_junk_and_a_truncated_last_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"instruction": "caf\xe9", "output": "x"}\n'
                     + b"\x00\x01\x02junk\x00\n" + b'{"instruction": "x", "output": "cut of')
    problems = problems_of(path)
    assert problems[0].startswith("data.jsonl:2: not valid UTF-8 (byte 0xe9")
    assert problems[1].startswith("data.jsonl:3: binary data")
    assert problems[2].startswith("data.jsonl:4: the JSON ends early")


def test_too_long_records_are_reported_when_a_tokenizer_is_given(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [json.dumps(GOOD), json.dumps(dict(GOOD, output="word " * 300))])
    assert problems_of(path) == []
    problems = problems_of(path, tokenizer=tiny_tokenizer(), max_length=256)
    assert len(problems) == 1 and problems[0].startswith("data.jsonl:2: ") and "longer than max_length 256" in problems[0]


@pytest.mark.parametrize("name, content, message", [
    ("empty.jsonl", b"", "the file is empty"),
    ("blank.jsonl", b"\n \n", "the file is empty"),
    ("zip.jsonl", b"PK\x03\x04" + bytes(range(256)), "ZIP archive"),
    ("noise.csv", bytes(range(32)) * 40, "binary file"),
    ("utf16.json", "[]".encode("utf-16"), "UTF-16"),
    ("cols.csv", b"question,answer\nq,a\n", "wrong columns"),
    ("data.parquet", b"PAR1", "unsupported file type"),
    ("obj.json", b'{"foo": 1}', "expected a JSON array"),
])
def test_file_level_problems(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as caught:
        check_user_dataset(path)
    assert name in caught.value.render()


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        check_user_dataset(tmp_path / "nope.jsonl")


def test_json_array_records_get_their_starting_lines(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c",\n   "output": 5},\n'
                    '  {"instruction": "e", "output": "f"}\n]\n')
    records, report = check_user_dataset(path)
    assert [r["source_line"] for r in records] == [2, 5]
    assert report.problems == ["data.json:3: field 'output' must be text, got a number"]
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text('{"data": [\n{"instruction": "a", "output": "b"}\n]}')
    assert check_user_dataset(wrapped)[1].loaded == 1
    cut = tmp_path / "cut.json"
    cut.write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": "c", "out')
    assert "cut.json:3: the JSON ends early" in check_user_dataset(cut)[1].problems[0]


def test_a_json_file_with_one_object_per_line_is_read_as_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "data.json", [json.dumps(GOOD), json.dumps(dict(GOOD, output="b"))])
    records, report = check_user_dataset(path)
    assert report.format == "jsonl" and len(records) == 2


def test_csv_lines_account_for_multi_line_cells(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('instruction,input,output\nQ1,,A1\n"Q2 over\ntwo lines",,\nQ3,x\nQ4,,"A4"\n', encoding="utf-8")
    records, report = check_user_dataset(path)
    assert [r["source_line"] for r in records] == [2, 6]
    assert report.problems == ["data.csv:3: field 'output' is empty", "data.csv:5: expected 3 fields, found 2"]


def test_duplicates_are_removed_and_counted(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [json.dumps(GOOD), json.dumps(dict(GOOD, output=GOOD["output"] + "  ")),
                                                 json.dumps(dict(GOOD, output="Different."))])
    records, report = check_user_dataset(path)
    assert len(records) == 2 and report.duplicates == 1 and "1 duplicates removed" in report.summary()


def test_refuse_unless_skipping_and_then_say_how_many(tmp_path):
    lines = [json.dumps(dict(GOOD, output=f"answer {i}")) for i in range(5)] + ['{"bad": 1}'] * 25
    path = write_jsonl(tmp_path / "data.jsonl", lines)
    with pytest.raises(UserError) as caught:
        load_user_records(path)
    error = caught.value
    assert "25 bad record(s)" in error.message and len(error.details) == 21
    assert error.details[0].startswith("data.jsonl:6: ") and error.details[-1] == "... and 5 more"
    assert "skip_bad_records" in error.fix
    records, report = load_user_records(path, skip_bad_records=True)
    assert len(records) == 5 and report.skipped == 25 and "25 bad records skipped" in report.summary()


def test_nothing_usable_is_refused_even_when_skipping(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", ['{"bad": 1}'])
    with pytest.raises(UserError, match="no usable records"):
        load_user_records(path, skip_bad_records=True)


def test_chat_messages_become_history_and_a_final_turn(tmp_path):
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Camry hp?"},
                         {"role": "assistant", "content": "203 hp."}, {"role": "user", "content": "Accord?"},
                         {"role": "assistant", "content": "192 hp."}], "category": "specs"}
    path = write_jsonl(tmp_path / "chat.jsonl", [json.dumps(chat)])
    (record,), _ = check_user_dataset(path)
    assert record["instruction"] == "Accord?" and record["output"] == "192 hp." and record["system"] == "Be brief."
    assert record["history"] == [["Camry hp?", "203 hp."]] and record["category"] == "specs"


def test_load_user_dataset_returns_a_datasets_dataset(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [json.dumps(dict(GOOD, output=f"a{i}")) for i in range(4)])
    dataset, report = load_user_dataset(path)
    assert len(dataset) == 4 and set(dataset.column_names) >= {"instruction", "input", "output"}
    assert report.loaded == 4


def test_a_user_file_splits_by_category(tmp_path):
    lines = [json.dumps(dict(GOOD, instruction=f"Q{i}", category="a" if i % 2 else "b")) for i in range(100)]
    built = build_from_file(write_jsonl(tmp_path / "data.jsonl", lines), validation_fraction=0.1, test_fraction=0.1)
    assert {n: len(r) for n, r in built.splits.items()} == {"train": 80, "validation": 10, "test": 10}
    assert built.meta["loaded"] == 100
