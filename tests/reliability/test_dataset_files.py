"""Whatever bytes a user's dataset file holds, loading it ends in records or a UserError, never a crash."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carexpert.dataset import check_user_dataset
from carexpert.errors import UserError

GOOD_LINES = [json.dumps({"instruction": f"Question {i}?", "input": "", "output": f"Answer number {i}."})
              for i in range(4)] + [json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                             {"role": "assistant", "content": "hello"}]})]
PROBLEM = re.compile(r"^data\.(jsonl|json|csv):\d+: \S")


def _check(suffix: str, payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(payload)
        try:
            records, report = check_user_dataset(path)
        except UserError as error:
            assert error.render()
            return
        assert report.loaded == len(records)
        for problem in report.problems:
            assert PROBLEM.match(problem), problem
        lines = payload.count(b"\n") + 1
        assert all(1 <= line <= lines for line in report.bad_lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suffix=st.sampled_from([".jsonl", ".json", ".csv"]), payload=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_loader(suffix, payload):
    _check(suffix, payload)


@settings(max_examples=150, deadline=None)
@given(suffix=st.sampled_from([".jsonl", ".json", ".csv"]),
       pieces=st.lists(st.sampled_from(list('{}[]",:\n \\abc01\x00é') + ['"instruction"', '"output"', '"messages"',
                                                                            '"role"', '"content"', '"user"']),
                       max_size=120))
def test_json_like_noise_never_crashes_the_loader(suffix, pieces):
    _check(suffix, "".join(pieces).encode("utf-8"))


def test_a_jsonl_file_cut_at_every_byte_reports_only_the_cut_line():
    payload = ("\n".join(GOOD_LINES) + "\n").encode()
    for cut in range(1, len(payload)):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "data.jsonl"
            path.write_bytes(payload[:cut])
            try:
                records, report = check_user_dataset(path)
            except UserError as error:  # cut inside the first line's whitespace-only prefix
                assert "empty" in error.message
                continue
            complete = payload[:cut].count(b"\n")
            assert len(records) >= complete - 0
            assert len(report.problems) <= 1
            if report.problems:
                assert report.bad_lines == [complete + 1]


def test_a_json_array_cut_at_every_byte_never_crashes():
    payload = ("[\n" + ",\n".join(GOOD_LINES) + "\n]\n").encode()
    for cut in range(1, len(payload), 3):
        _check(".json", payload[:cut])
