"""How well retrieval finds the passages that answer the dataset's questions (the matcher's yardstick).

For each record, the answering passages are its ``fact_ids`` that the store holds (made-up
models are not passages). A record counts as found when each of them is among the top k hits,
or, for a vehicle, when a hit's text names it (a budget or concept passage lists its example
cars); k is the retriever's top_k, one more when the record names two vehicles. Records about
made-up models should come back with ``unknown`` set; every other record should not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carexpert.retrieval import Retrieval, Retriever


@dataclass
class RecallReport:
    total: int = 0
    found: int = 0
    found_by_id: int = 0             # every answering passage among the hits by id (no name-in-text credit)
    vehicle_total: int = 0           # records whose facts are one or two vehicles (maybe with one concept)
    vehicle_found: int = 0
    refusal_total: int = 0           # records about made-up models
    refusal_flagged: int = 0
    other_total: int = 0             # all other records
    other_flagged: int = 0           # ... wrongly flagged as naming an unknown vehicle
    by_kind: Counter = field(default_factory=Counter)
    misses_by_kind: Counter = field(default_factory=Counter)
    misses: list[dict[str, Any]] = field(default_factory=list)
    false_flags: list[dict[str, Any]] = field(default_factory=list)
    missed_refusals: list[dict[str, Any]] = field(default_factory=list)

    def shares(self) -> dict[str, float]:
        def share(a: int, b: int) -> float:
            return round(a / b, 4) if b else 1.0
        return {"found": share(self.found, self.total), "found_by_id": share(self.found_by_id, self.total),
                "vehicle_found": share(self.vehicle_found, self.vehicle_total),
                "refusal_flagged": share(self.refusal_flagged, self.refusal_total),
                "false_flags": share(self.other_flagged, self.other_total) if self.other_total else 0.0}

    def summary(self) -> str:
        s = self.shares()
        return (f"answering passages in the top k: {s['found']:.2%} of {self.total} records "
                f"({s['found_by_id']:.2%} by id alone); vehicle questions: {s['vehicle_found']:.2%} of "
                f"{self.vehicle_total}; made-up models flagged unknown: {s['refusal_flagged']:.2%} of "
                f"{self.refusal_total}; other records wrongly flagged: {s['false_flags']:.2%} of {self.other_total}")


def question_of(record: Mapping[str, Any]) -> str:
    """The text retrieval sees: the instruction, plus the input when there is one."""
    text = str(record.get("instruction", ""))
    extra = str(record.get("input", "") or "")
    return f"{text}\n{extra}" if extra.strip() else text


def measure(retriever: Retriever, records: Iterable[Mapping[str, Any]], keep: int = 50) -> RecallReport:
    report = RecallReport()
    names: dict[str, str] = {}
    for record in records:
        facts = list(record.get("fact_ids", ()))
        vehicles = [f for f in facts if f.startswith("vehicle:")]
        refusal = bool(record.get("expect_refusal"))
        k = retriever.top_k + (1 if len(vehicles) == 2 else 0)
        result = retriever.retrieve(question_of(record), k=k)
        kind = str(record.get("kind", "?"))
        if refusal:
            report.refusal_total += 1
            if result.unknown is not None:
                report.refusal_flagged += 1
            elif len(report.missed_refusals) < keep:
                report.missed_refusals.append(_row(record, result))
        else:
            report.other_total += 1
            if result.unknown is not None:
                report.other_flagged += 1
                if len(report.false_flags) < keep:
                    report.false_flags.append(_row(record, result))
        wanted = [f for f in facts if not f.startswith("fictional:")]
        if not wanted:
            continue
        report.total += 1
        report.by_kind[kind] += 1
        hit_ids = {h.passage.fact_id for h in result.hits}
        texts = " ".join(h.passage.text for h in result.hits)
        by_id = all(f in hit_ids for f in wanted)
        ok = by_id or all(f in hit_ids or (f.startswith("vehicle:") and _name(retriever, f, names) in texts)
                          for f in wanted)
        report.found += ok
        report.found_by_id += by_id
        simple_vehicle = 1 <= len(vehicles) <= 2 and len(wanted) - len(vehicles) <= 1 and kind != "examples"
        if simple_vehicle and not any(f.startswith("buying:") for f in wanted):
            report.vehicle_total += 1
            report.vehicle_found += ok
        if not ok:
            report.misses_by_kind[kind] += 1
            if len(report.misses) < keep:
                report.misses.append(_row(record, result, wanted))
    return report


def _name(retriever: Retriever, fact_id: str, cache: dict[str, str]) -> str:
    if fact_id not in cache:
        passage = retriever.passage(fact_id)
        cache[fact_id] = passage.title if passage else "\0"
    return cache[fact_id]


def _row(record: Mapping[str, Any], result: Retrieval, wanted: list[str] | None = None) -> dict[str, Any]:
    row = {"question": question_of(record), "kind": record.get("kind"),
           "hits": [h.passage.fact_id for h in result.hits],
           "unknown": result.unknown.named if result.unknown else None}
    if wanted is not None:
        row["wanted"] = wanted
    return row
