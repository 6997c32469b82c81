"""Evaluation cases: held-out records, the seed's showcase questions and the user's own.

Everything evaluated is an ``EvalCase``: a question plus what a right answer must
contain (reference numbers, key terms, or a refusal). Held-out test records and the
showcase questions come from ``carexpert.dataset``; users add their own cases with
``carexpert eval add-case`` (for example a chat turn they want to track). Those live in
``<data.data_dir>/eval_cases.jsonl``, one JSON object a line, and every later
evaluation includes them.

A user's cases are bounded (``check_user_case``): a question of at most
``MAX_QUESTION_CHARS``, a reference of at most ``MAX_REFERENCE_CHARS``, key terms that
each hold a word, and a cases file of at most ``MAX_CASES_FILE_BYTES``. A pasted
megabyte would otherwise make every later evaluation build a prompt far past the
model's context.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.evaluation.concepts import spellings
from carexpert.fsutil import atomic_write_text, read_limited

CASES_FILE_NAME = "eval_cases.jsonl"
USER_CATEGORY = "user"
MAX_QUESTION_CHARS = 4000
MAX_REFERENCE_CHARS = 20000
MAX_KEY_TERMS = 50
MAX_CATEGORY_CHARS = 60
MAX_CASES_FILE_BYTES = 16 * 1024 * 1024


@dataclass
class EvalCase:
    """One question to ask both models, and what a right answer contains."""

    id: str
    category: str
    question: str
    input: str = ""
    reference_text: str = ""
    reference: dict[str, float] = field(default_factory=dict)
    key_terms: list[str] = field(default_factory=list)
    expect_refusal: bool = False
    source: str = "test"
    holdout: str = ""  # how the dataset held it out: "fact" (never seen), "question", "showcase"; "user"
    # What the knowledge store says about the vehicles the question names (carexpert.evaluation.figures
    # .store_expectations): {"vehicles", "figures", "lacks", "made_up"}; {} when it names none.
    store: dict[str, Any] = field(default_factory=dict)

    def expected(self) -> dict[str, Any]:
        """The machine-checkable expectations, as written to items.jsonl."""
        expected = {"reference": dict(self.reference), "key_terms": list(self.key_terms),
                    "expect_refusal": self.expect_refusal}
        if self.store:
            expected["store"] = self.store
        return expected

    def to_record(self) -> dict[str, Any]:
        """The Alpaca-style record (the form of the cases file and of dataset records)."""
        return {"id": self.id, "instruction": self.question, "input": self.input,
                "output": self.reference_text, "category": self.category, "reference": dict(self.reference),
                "key_terms": list(self.key_terms), "expect_refusal": self.expect_refusal}


def numeric_reference(raw: Any) -> dict[str, float]:
    """The numeric entries of a record's ``reference`` dict (text and flags are dropped)."""
    numbers: dict[str, float] = {}
    if not isinstance(raw, Mapping):
        return numbers
    for key, value in raw.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            numbers[str(key)] = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.replace(",", "").replace("$", "").strip())
            except ValueError:
                continue
            if math.isfinite(number):
                numbers[str(key)] = number
    return numbers


def case_from_record(record: Mapping[str, Any], *, source: str = "test", where: str = "") -> EvalCase:
    """An EvalCase from an Alpaca-style record (dataset split, showcase or cases file)."""
    question = record.get("instruction") or record.get("question") or ""
    if not isinstance(question, str) or not question.strip():
        raise UserError("record has no question ('instruction')", where=where or str(record.get("id", "?")),
                        fix="give every eval case a non-empty 'instruction'")
    terms = record.get("key_terms") or []
    if isinstance(terms, str):
        terms = [terms]
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise UserError("'key_terms' must be a list of strings", where=where or str(record.get("id", "?")))
    case_id = str(record.get("id") or _question_id(question))
    return EvalCase(
        id=case_id,
        category=str(record.get("category") or USER_CATEGORY),
        question=question.strip(),
        input=str(record.get("input") or ""),
        reference_text=str(record.get("output") or record.get("reference_text") or ""),
        reference=numeric_reference(record.get("reference")),
        key_terms=[t.strip() for t in terms if t.strip()],
        expect_refusal=bool(record.get("expect_refusal", False)),
        source=source,
        holdout=str(record.get("holdout") or ("user" if source == "user" else "")),
    )


def _question_id(question: str) -> str:
    digest = hashlib.sha1(" ".join(question.lower().split()).encode("utf-8")).hexdigest()[:10]
    return f"user-{digest}"


def cases_file(data_dir: str | Path) -> Path:
    """Where user-added eval cases are kept."""
    return Path(data_dir) / CASES_FILE_NAME


def load_user_cases(path: str | Path) -> list[EvalCase]:
    """The cases in a cases file (none if it does not exist); a UserError names a bad line."""
    target = Path(path)
    if not target.exists():
        return []
    cases = []
    raw = read_limited(target, MAX_CASES_FILE_BYTES, "the eval cases file",
                       fix="keep your eval cases in a file of at most a few MB (one JSON object a line)")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"the eval cases file is not UTF-8 ({exc.reason} at byte {exc.start})", where=str(target),
                        fix="save it as UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{target}:{number}"
        try:
            record = json.loads(line)
        except RecursionError:
            raise UserError("JSON nested too deeply (thousands of levels of [ or {)", where=where,
                            fix="fix or delete that line; each line is one JSON object") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"not valid JSON ({exc.msg})", where=where,
                            fix="fix or delete that line; each line is one JSON object") from None
        if not isinstance(record, dict):
            raise UserError("a line must be a JSON object", where=where)
        case = case_from_record(record, source="user", where=where)
        check_user_case(case, where=where)
        cases.append(case)
    return cases


def check_user_case(case: EvalCase, *, where: str = "") -> EvalCase:
    """``case`` if its sizes are sane and every key term holds a word; a UserError naming the part otherwise."""
    fix = "shorten it; an eval case is one question with a short reference answer"
    if len(case.question) + len(case.input) > MAX_QUESTION_CHARS:
        raise UserError(f"the question is {len(case.question) + len(case.input):,} characters; at most "
                        f"{MAX_QUESTION_CHARS:,} are allowed", where=where, fix=fix)
    if len(case.reference_text) > MAX_REFERENCE_CHARS:
        raise UserError(f"the reference answer is {len(case.reference_text):,} characters; at most "
                        f"{MAX_REFERENCE_CHARS:,} are allowed", where=where, fix=fix)
    if len(case.category) > MAX_CATEGORY_CHARS:
        raise UserError(f"the category is longer than {MAX_CATEGORY_CHARS} characters", where=where,
                        fix="use a short category name")
    if len(case.key_terms) > MAX_KEY_TERMS:
        raise UserError(f"{len(case.key_terms)} key terms; at most {MAX_KEY_TERMS} are allowed", where=where,
                        fix="keep the few terms a right answer must mention")
    for term in case.key_terms:
        if len(term) > 200 or not spellings(term):
            raise UserError(f"key term {term[:40]!r} " + ("is too long" if len(term) > 200 else
                            "holds no word (only punctuation or '|'), so it could never be checked"),
                            where=where, fix="give words a right answer contains, e.g. --key-terms 'timing belt|cambelt'")
    return case


def add_user_case(path: str | Path, question: str, *, reference_text: str = "", category: str = USER_CATEGORY,
                  key_terms: Iterable[str] = (), expect_refusal: bool = False,
                  reference: Mapping[str, float] | None = None) -> tuple[EvalCase, bool]:
    """Save a case (replacing one with the same question); returns (case, replaced)."""
    if not question or not question.strip():
        raise UserError("the question is empty", fix="pass --question with the text to ask")
    case = EvalCase(id=_question_id(question), category=category.strip() or USER_CATEGORY,
                    question=question.strip(), reference_text=reference_text.strip(),
                    reference=numeric_reference(reference or {}),
                    key_terms=[t.strip() for t in key_terms if t and t.strip()],
                    expect_refusal=expect_refusal, source="user", holdout="user")
    check_user_case(case)
    existing = load_user_cases(path)
    replaced = any(c.id == case.id for c in existing)
    kept = [c for c in existing if c.id != case.id] + [case]
    lines = [json.dumps(c.to_record(), ensure_ascii=False) for c in kept]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return case, replaced


def dedupe(cases: Iterable[EvalCase]) -> list[EvalCase]:
    """Drop repeated questions (first one wins), so a showcase question in the test split is asked once."""
    seen: set[str] = set()
    unique = []
    for case in cases:
        key = " ".join(case.question.lower().split()) + "\x00" + case.input.strip().lower()
        if key in seen:
            continue
        seen.add(key)
        unique.append(case)
    return unique
