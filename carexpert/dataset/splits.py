"""Train / validation / test splits that keep evaluation honest.

The test set holds three kinds of questions, marked in each record's ``holdout`` field:
``fact`` - every question about a held-out fact (a whole vehicle, concept, maintenance item
or invented model) that training never sees; ``question`` - a share of the remaining
questions, per category, whose facts training does see but in other words; ``showcase`` -
the seed's showcase questions. Records are assigned by normalized question, so the same
question can never land on both sides. Validation is a per-category share of the rest.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from carexpert.dataset.fingerprint import bytes_fingerprint
from carexpert.dataset.records import normalize_question
from carexpert.errors import UserError
from carexpert.fsutil import atomic_write_bytes, atomic_write_json

SPLITS = ("train", "validation", "test")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def build_splits(records: Sequence[Mapping[str, Any]], *, validation_fraction: float = 0.1,
                 test_fraction: float = 0.1, holdout_fact_fraction: float = 0.1, seed: int = 42,
                 protected_facts: Iterable[str] = (), extra_test: Sequence[Mapping[str, Any]] = ()
                 ) -> dict[str, list[dict[str, Any]]]:
    """Split records into train/validation/test (see the module docstring for the rules)."""
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("holdout_fact_fraction", holdout_fact_fraction)
    rng = random.Random(f"{seed}:splits")
    held = held_out_facts(records, holdout_fact_fraction, seed, protected_facts)
    reserved = {normalize_question(r["instruction"], r.get("input", "")) for r in extra_test}
    groups = _question_groups(records, reserved)
    test, rest = [], []
    for key, members in groups.items():
        if any(f in held for m in members for f in m.get("fact_ids", ())):
            test += [dict(m, holdout="fact") for m in members]
        else:
            rest.append((key, members))
    by_category: dict[str, list] = defaultdict(list)
    for key, members in rest:
        by_category[members[0].get("category", "user")].append((key, members))
    train, validation = [], []
    for category in sorted(by_category):
        units = by_category[category]
        rng.shuffle(units)
        n_test = _half_up(test_fraction * len(units))
        n_val = _half_up(validation_fraction * (len(units) - n_test))
        for index, (_, members) in enumerate(units):
            if index < n_test:
                test += [dict(m, holdout="question") for m in members]
            elif index < n_test + n_val:
                validation += [dict(m) for m in members]
            else:
                train += [dict(m) for m in members]
    test += [dict(r, holdout="showcase") for r in extra_test]
    return {"train": _stable(train), "validation": _stable(validation), "test": _stable(test)}


def held_out_facts(records: Sequence[Mapping[str, Any]], fraction: float, seed: int,
                   protected: Iterable[str] = ()) -> set[str]:
    """A seeded share of each kind of fact (vehicle, concept, ...), never the protected ones."""
    protected = set(protected)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for fact in sorted({f for r in records for f in r.get("fact_ids", ())} - protected):
        by_kind[fact.split(":", 1)[0]].append(fact)
    rng = random.Random(f"{seed}:held-out-facts")
    held: set[str] = set()
    for kind in sorted(by_kind):
        facts = by_kind[kind]
        held.update(rng.sample(facts, _half_up(fraction * len(facts))))
    return held


def split_summary(splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Counts, category mix and holdout kinds per split (what the manifest and CLI show)."""
    return {
        "counts": {name: len(rows) for name, rows in splits.items()},
        "category_mix": {name: dict(sorted(Counter(r.get("category", "user") for r in rows).items()))
                         for name, rows in splits.items()},
        "test_holdout": dict(sorted(Counter(r.get("holdout", "") for r in splits.get("test", ())).items())),
    }


def write_splits(splits: Mapping[str, Sequence[Mapping[str, Any]]], directory: str | Path, *,
                 meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write train/validation/test JSONL atomically plus manifest.json; returns the manifest."""
    target = Path(directory)
    payloads = {name: _jsonl(splits.get(name, ())) for name in SPLITS}
    files = {}
    for name, payload in payloads.items():
        atomic_write_bytes(target / f"{name}.jsonl", payload)
        files[f"{name}.jsonl"] = bytes_fingerprint([payload])
    manifest = {"format_version": FORMAT_VERSION, **(meta or {}), **split_summary(splits),
                "held_out_facts": unseen_test_facts(splits), "files": files,
                "fingerprint": bytes_fingerprint(payloads[name] for name in SPLITS)}
    atomic_write_json(target / MANIFEST, manifest)
    return manifest


def read_splits(directory: str | Path, *, verify: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Read a directory written by ``write_splits`` (a UserError names a missing or changed file)."""
    target = Path(directory)
    manifest_path = target / MANIFEST
    if not manifest_path.exists():
        raise UserError("no dataset here (manifest.json is missing)", where=str(target),
                        fix="run 'carexpert data build' first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    splits = {}
    for name in SPLITS:
        path = target / f"{name}.jsonl"
        if not path.exists():
            raise UserError(f"{name}.jsonl is missing", where=str(target), fix="run 'carexpert data build' again")
        payload = path.read_bytes()
        if verify and manifest.get("files", {}).get(path.name) not in (None, bytes_fingerprint([payload])):
            raise UserError(f"{path.name} changed since it was built", where=str(path),
                            fix="run 'carexpert data build' again (or restore the file)")
        splits[name] = [json.loads(line) for line in payload.decode("utf-8").splitlines() if line.strip()]
    return splits


def unseen_test_facts(splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Facts the test set asks about that no training or validation record mentions."""
    seen = {f for name in ("train", "validation") for r in splits.get(name, ()) for f in r.get("fact_ids", ())}
    return sorted({f for r in splits.get("test", ()) for f in r.get("fact_ids", ())} - seen)


def leakage(splits: Mapping[str, Sequence[Mapping[str, Any]]], held_facts: Iterable[str] = ()) -> dict[str, list[str]]:
    """Test questions (normalized) that also occur in train/validation, and held facts that training mentions."""
    seen = [r for name in ("train", "validation") for r in splits.get(name, ())]
    seen_questions = {normalize_question(r["instruction"], r.get("input", "")) for r in seen}
    seen_facts = {f for r in seen for f in r.get("fact_ids", ())}
    test_questions = {normalize_question(r["instruction"], r.get("input", "")) for r in splits.get("test", ())}
    return {"questions": sorted(test_questions & seen_questions), "facts": sorted(set(held_facts) & seen_facts)}


def _question_groups(records: Sequence[Mapping[str, Any]], reserved: set[str]) -> dict[str, list[Mapping[str, Any]]]:
    """Records grouped by normalized question (in first-seen order); reserved questions are dropped."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        key = normalize_question(record["instruction"], record.get("input", ""))
        if key not in reserved:
            groups.setdefault(key, []).append(record)
    return groups


def _stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r.get("category", ""), str(r.get("id", ""))))


def _jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def _half_up(value: float) -> int:
    return int(value + 0.5)


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise UserError(f"{name} must be at least 0 and below 1, got {value}")
