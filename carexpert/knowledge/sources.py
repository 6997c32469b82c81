"""Where passages come from: the builtin tables, or a file a user imports (read and checked here).

An import is read whole, bounded in size, and parsed (every vehicle row checked like the
builtin table, each bad row reported with its line) before the store is touched, so a bad
file leaves the store as it was.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from carexpert.errors import UserError
from carexpert.fsutil import read_limited
from carexpert.knowledge.loading import parse_vehicle_rows
from carexpert.knowledge.types import VEHICLE_COLUMNS, Knowledge, Vehicle

BUILTIN = "builtin"
VEHICLE_SUFFIXES = (".csv", ".jsonl")
NOTE_SUFFIXES = (".txt", ".md", ".markdown")
IMPORT_LIMIT = 64 * 1024 * 1024  # bytes: a spreadsheet of vehicles or a folder of notes, not a disk image


@dataclass(frozen=True)
class Source:
    """One origin of passages: the builtin tables or a file the user imported."""

    name: str      # "builtin", or the imported file's name ("my-fleet.csv")
    kind: str      # "builtin", "vehicles" or "notes"
    content: str   # an import's text as it was imported ("" for builtin)
    hash: str


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_import(path: str | os.PathLike) -> Source:
    """A file to import, read and checked (vehicle rows parsed, notes split) before the store is touched."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*VEHICLE_SUFFIXES, *NOTE_SUFFIXES):
        raise UserError(f"cannot import {suffix or 'a file without an extension'}", where=str(path),
                        fix="import vehicle rows as .csv or .jsonl (the columns of vehicles.csv) or notes as .txt/.md")
    data = read_limited(path, IMPORT_LIMIT, "the file to import")
    try:
        content = data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of the header
    except UnicodeDecodeError:
        raise UserError("the file is not UTF-8 text", where=str(path), fix="save it as UTF-8") from None
    kind = "vehicles" if suffix in VEHICLE_SUFFIXES else "notes"
    if not content.strip():
        raise UserError("the file is empty", where=str(path))
    return Source(path.name, kind, content, _hash(kind + "\0" + content))


def parse_vehicle_source(source: Source, knowledge: Knowledge) -> tuple[Vehicle, ...]:
    """The vehicles of an imported CSV/JSONL source; bad rows are reported with their lines."""
    return parse_vehicle_rows(_vehicle_rows(source), knowledge.segments, source.name)


def _vehicle_rows(source: Source) -> Iterator[tuple[int, dict]]:
    if source.name.lower().endswith(".jsonl"):
        for number, line in enumerate(source.content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"not valid JSON: {error.msg}", where=f"{source.name}:{number}") from None
            if not isinstance(row, dict):
                raise UserError("each line must be a JSON object of vehicle columns", where=f"{source.name}:{number}")
            yield number, row
        return
    reader = csv.DictReader(io.StringIO(source.content, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in VEHICLE_COLUMNS if c not in header]
    if missing:
        raise UserError("the CSV header lacks vehicle columns", where=f"{source.name}:1", details=missing,
                        fix=f"use the header of the builtin vehicles.csv: {','.join(VEHICLE_COLUMNS)}")
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as error:
        raise UserError(f"cannot read the CSV: {error}", where=f"{source.name}:{reader.line_num}") from None
