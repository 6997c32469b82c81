"""Loading a user dataset: validate every record, report every problem, then build a Dataset.

The run refuses to start while any record is bad, listing the problems with file and line
(the first 20, then "and N more"), unless the user set ``skip_bad_records``, in which case
the bad ones are left out and counted. Exact duplicates (after trimming whitespace) are
removed and counted either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carexpert.dataset.tokenization import token_length
from carexpert.dataset.user_formats import read_raw_records
from carexpert.dataset.user_validate import unknown_fields, validate_record
from carexpert.errors import UserError

MAX_LISTED = 20


@dataclass
class LoadReport:
    """What loading a user file found."""

    path: str
    format: str = ""
    total: int = 0
    loaded: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    ignored_fields: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def listed_problems(self, limit: int = MAX_LISTED) -> list[str]:
        shown = self.problems[:limit]
        if len(self.problems) > limit:
            shown.append(f"... and {len(self.problems) - limit} more")
        return shown

    def summary(self) -> str:
        parts = [f"{self.loaded} records loaded from {self.path} ({self.format})"]
        if self.skipped:
            parts.append(f"{self.skipped} bad records skipped")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicates removed")
        if self.ignored_fields:
            parts.append(f"ignored fields: {', '.join(self.ignored_fields)}")
        return "; ".join(parts)


def check_user_dataset(path: str | Path, *, tokenizer: Any = None, max_length: int | None = None
                       ) -> tuple[list[dict[str, Any]], LoadReport]:
    """Every good record (deduplicated) and a report of every bad one; file-level problems raise."""
    target = Path(path)
    fmt, raw = read_raw_records(target)
    report = LoadReport(path=str(target), format=fmt, total=len(raw))
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    ignored: set[str] = set()
    bad: dict[int, list[str]] = {}
    for item in raw:
        if item.error:
            bad.setdefault(item.line, []).append(item.error)
            continue
        record, problems = validate_record(item.value)
        if record is not None and tokenizer is not None and max_length:
            length = token_length(tokenizer, record)
            if length > max_length:
                problems = [(f"{length} tokens, longer than max_length {max_length} "
                            "(shorten it or raise data.max_length)")]
                record = None
        if record is None:
            bad.setdefault(item.line, []).extend(problems)
            continue
        ignored |= unknown_fields(item.value)
        key = _duplicate_key(record)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        record["id"] = f"user-{item.line}"
        record["fact_ids"] = []
        record["source_line"] = item.line
        records.append(record)
    report.bad_lines = sorted(bad)
    report.problems = [f"{target.name}:{line}: {message}" for line in report.bad_lines for message in bad[line]]
    report.ignored_fields = sorted(ignored)
    report.loaded = len(records)
    return records, report


def load_user_records(path: str | Path, *, tokenizer: Any = None, max_length: int | None = None,
                      skip_bad_records: bool = False) -> tuple[list[dict[str, Any]], LoadReport]:
    """Good records, or a UserError listing every problem (unless ``skip_bad_records``)."""
    records, report = check_user_dataset(path, tokenizer=tokenizer, max_length=max_length)
    if report.problems and not skip_bad_records:
        raise UserError(f"{len(report.bad_lines)} bad record(s) in the dataset", where=report.path,
                        details=report.listed_problems(),
                        fix="fix those lines, or set data.skip_bad_records = true to train without them")
    report.skipped = len(report.bad_lines)
    if not records:
        raise UserError("no usable records in the dataset", where=report.path, details=report.listed_problems(),
                        fix="each record needs instruction and output text (or a chat 'messages' list)")
    return records, report


def load_user_dataset(path: str | Path, *, tokenizer: Any = None, max_length: int | None = None,
                      skip_bad_records: bool = False):
    """The validated records as a ``datasets.Dataset`` (plus the report)."""
    import datasets

    records, report = load_user_records(path, tokenizer=tokenizer, max_length=max_length,
                                        skip_bad_records=skip_bad_records)
    rows = [dict(r, history=r.get("history", []), system=r.get("system")) for r in records]
    return datasets.Dataset.from_list(rows), report


def _duplicate_key(record: dict[str, Any]) -> str:
    def clean(text: Any) -> str:
        return " ".join(str(text or "").split())
    return json.dumps([clean(record.get("system")), [[clean(q), clean(a)] for q, a in record.get("history", [])],
                       clean(record["instruction"]), clean(record.get("input")), clean(record["output"])])
