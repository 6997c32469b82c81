"""Reading a user's JSONL, JSON or CSV file into raw records, each tagged with its line.

Parsing is done here, by hand, rather than by ``datasets``, because a user needs to hear
about *every* bad line (bad JSON, a truncated last line, bytes that are not UTF-8, binary
junk) with its line number, not just the first exception. File-level problems (missing,
empty, binary, wrong CSV columns) raise ``UserError`` at once; line-level ones come back
as ``RawRecord.error`` so validation can list them all.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.fsutil import read_limited

# Read whole, then decoded and parsed: a few times this much memory. Larger data belongs in shards.
MAX_DATASET_BYTES = 512 * 1024 * 1024
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
CSV_REQUIRED = ("instruction", "output")
CSV_KNOWN = ("instruction", "input", "output", "category", "system")
JSON_LIST_KEYS = ("data", "examples", "records", "train")
_BINARY_MAGIC = {b"PK\x03\x04": "a ZIP archive", b"\x1f\x8b": "a gzip file", b"%PDF": "a PDF",
                 b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"PAR1": "a Parquet file",
                 b"SQLite format": "an SQLite database"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class RawRecord:
    line: int
    value: Any = None
    error: str | None = None


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"unsupported file type {path.suffix or '(none)'!r}", where=str(path),
                        fix="use a .jsonl, .json or .csv file (Alpaca fields or chat 'messages')")
    return fmt


def read_raw_records(path: str | Path) -> tuple[str, list[RawRecord]]:
    """(format, raw records in file order); raises UserError for problems with the file as a whole."""
    target = Path(path)
    if not target.exists():
        raise UserError("file not found", where=str(target), fix="check the path in data.dataset")
    if target.is_dir():
        raise UserError("this is a folder, not a dataset file", where=str(target))
    fmt = detect_format(target)
    data = read_limited(target, MAX_DATASET_BYTES, "the dataset file",
                        fix="give a regular .jsonl/.json/.csv file (split a larger one: data.dataset takes one file)")
    if not data.strip():
        raise UserError("the file is empty", where=str(target), fix="add records, one JSON object per line for JSONL")
    _refuse_binary(data, target)
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if fmt == "jsonl":
        return fmt, _jsonl(text)
    if fmt == "json":
        stripped = text.lstrip()
        if stripped.startswith("{") and _looks_like_jsonl(stripped):
            return "jsonl", _jsonl(text)
        return fmt, _json(text, target)
    return fmt, _csv(text, target, "\t" if fmt == "tsv" else ",")


def line_problem(text: str) -> str | None:
    """Why a line of text cannot be trusted (bad UTF-8, binary junk), or None."""
    match = _SURROGATE.search(text)
    if match:
        byte = ord(match.group(0)) - 0xDC00
        return f"not valid UTF-8 (byte 0x{byte:02x} at column {match.start() + 1}); save the file as UTF-8"
    if "\x00" in text or len(_CONTROL.findall(text)) > 2:
        return "binary data (NUL or control bytes) in a text line"
    return None


def _refuse_binary(data: bytes, path: Path) -> None:
    for magic, kind in _BINARY_MAGIC.items():
        if data.startswith(magic):
            raise UserError(f"this is {kind}, not a text dataset", where=str(path),
                            fix="export the data as JSONL, JSON or CSV")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError("the file is UTF-16 encoded", where=str(path), fix="save it as UTF-8")
    head = data[:8192]
    junk = sum(1 for b in head if b < 9 or 13 < b < 32)
    if junk > max(8, len(head) // 10):
        raise UserError("this looks like a binary file, not text", where=str(path),
                        fix="export the data as JSONL, JSON or CSV")


def _jsonl(text: str) -> list[RawRecord]:
    records = []
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problem = line_problem(line)
        if problem:
            records.append(RawRecord(number, error=problem))
            continue
        try:
            records.append(RawRecord(number, json.loads(line)))
        except RecursionError:
            records.append(RawRecord(number, error="JSON nested too deeply (thousands of levels of [ or {)"))
        except json.JSONDecodeError as exc:
            last = number == len(lines) and not ends_with_newline
            if last and not line.rstrip().endswith("}"):
                records.append(RawRecord(number, error="the JSON ends early: the file looks truncated (cut off mid-record)"))
            else:
                records.append(RawRecord(number, error=f"invalid JSON: {exc.msg} (column {exc.colno})"))
    return records


def _looks_like_jsonl(text: str) -> bool:
    """A .json file that is really one object per line."""
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except (json.JSONDecodeError, RecursionError):
        return "\n{" in text
    return text[end:].lstrip().startswith("{")


def _json(text: str, path: Path) -> list[RawRecord]:
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] == "{":
        match = re.search(r'"(' + "|".join(JSON_LIST_KEYS) + r')"\s*:\s*\[', text)
        if not match:
            raise UserError("expected a JSON array of records, or an object with a 'data' list", where=str(path),
                            fix='write [{"instruction": ..., "output": ...}, ...]')
        start = match.end() - 1
    if text[start:start + 1] != "[":
        raise UserError("expected a JSON array of records", where=str(path),
                        fix='write [{"instruction": ..., "output": ...}, ...]')
    records: list[RawRecord] = []
    pos = start + 1
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            records.append(RawRecord(_line_at(text, pos), error="the JSON ends early: the file looks truncated"))
            return records
        if text[pos] == "]":
            return records
        line, begin = _line_at(text, pos), pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except RecursionError:
            records.append(RawRecord(line, error="JSON nested too deeply (thousands of levels of [ or {); "
                                                 "records after this point could not be read"))
            return records
        except json.JSONDecodeError as exc:
            truncated = exc.pos >= len(text.rstrip()) or not text.rstrip().endswith(("]", "}"))
            where = "ends early: the file looks truncated" if truncated else \
                f"is invalid: {exc.msg} (line {_line_at(text, exc.pos)})"
            records.append(RawRecord(line, error=f"the JSON {where}; records after this point could not be read"))
            return records
        problem = line_problem(text[begin:pos])
        records.append(RawRecord(line, error=problem) if problem else RawRecord(line, value))
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] != "]":
            records.append(RawRecord(_line_at(text, pos), error="invalid JSON: expected ',' or ']' between records"))
            return records


def _csv(text: str, path: Path, delimiter: str) -> list[RawRecord]:
    cleaned_lines = []
    bad_lines: dict[int, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        problem = line_problem(line)
        if problem and "binary" in problem:
            bad_lines[number] = problem
            line = ""
        cleaned_lines.append(line)
    reader = csv.reader(io.StringIO("\n".join(cleaned_lines), newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError("the file is empty", where=str(path)) from None
    columns = [h.strip().lower().removeprefix("\ufeff") for h in header]
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise UserError(f"wrong columns: found {header}, missing {missing}", where=f"{path}:1",
                        fix="the first row must name the columns: instruction, input (optional), output")
    records = [RawRecord(n, error=p) for n, p in sorted(bad_lines.items())]
    previous_end = reader.line_num
    try:
        for row in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                records.append(RawRecord(line, error=f"expected {len(columns)} fields, found {len(row)}"))
                continue
            problem = line_problem(delimiter.join(row))
            value = {c: cell for c, cell in zip(columns, row) if c}
            records.append(RawRecord(line, error=problem) if problem else RawRecord(line, value))
    except csv.Error as exc:
        records.append(RawRecord(reader.line_num, error=f"CSV parse error: {exc}; records after this point could not be read"))
    return sorted(records, key=lambda r: r.line)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1

