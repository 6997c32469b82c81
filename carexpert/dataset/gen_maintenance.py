"""Maintenance questions: how often, why, warning signs, and what happens if you skip it.

Intervals come from ``maintenance.toml`` as [low, high] ranges; the kilometer version is
converted and rounded to the nearest 100 km, since service intervals are never exact.
"""

from __future__ import annotations

import random

from carexpert.dataset import units
from carexpert.dataset.asking import fill_question, frame, with_lead_in
from carexpert.dataset.records import Draft, Item, terms_in
from carexpert.dataset.text import capitalize_first
from carexpert.knowledge import Knowledge, MaintenanceItem

KM_STEP = 100


def maintenance_items(knowledge: Knowledge) -> list[Item]:
    items = []
    for entry in knowledge.maintenance:
        kinds = ["why", "signs", "neglect"]
        if entry.miles or entry.months:
            kinds.insert(0, "interval")
        if entry.miles:
            kinds.insert(1, "interval_km")
        if entry.questions:
            kinds.append("custom")
        items += [Item(f"maintenance:{entry.id}:{kind}", (entry.fact_id,), _builder(knowledge, entry, kind))
                  for kind in kinds]
    return items


def interval_sentence(entry: MaintenanceItem, metric: bool = False) -> str:
    """'Typically every 5,000 to 10,000 miles or 6 to 12 months, whichever comes first.'"""
    parts = []
    if entry.miles:
        low, high = entry.miles
        if metric:
            parts.append(f"{units.fmt_int(units.miles_to_km_rounded(low, KM_STEP))} to "
                         f"{units.fmt_int(units.miles_to_km_rounded(high, KM_STEP))} km "
                         f"({units.fmt_int(low)} to {units.fmt_int(high)} miles)")
        else:
            parts.append(f"{units.fmt_int(low)} to {units.fmt_int(high)} miles")
    if entry.months:
        parts.append(_months(entry.months))
    if not parts:
        return ""
    tail = ", whichever comes first" if len(parts) == 2 else ""
    return f"Typically every {' or '.join(parts)}{tail}.".replace("every once", "once")


def maintenance_answer(rng: random.Random, entry: MaintenanceItem, kind: str) -> str:
    signs = "; ".join(entry.signs)
    if kind in ("interval", "interval_km"):
        extra = entry.explanation if rng.random() < 0.4 else ""
        return " ".join(p for p in (interval_sentence(entry, kind == "interval_km"), entry.interval_note, extra) if p)
    if kind == "why":
        return f"{entry.explanation} {entry.neglect}"
    if kind == "signs":
        lead = rng.choice(["Watch for these signs:", "Common warning signs:", "Signs it's due:"])
        return f"{lead} {signs}. {entry.explanation}"
    if kind == "neglect":
        return f"{entry.neglect} {entry.explanation}"
    if kind == "custom":
        return f"{entry.interval_note} {entry.explanation} Signs to watch for: {signs}."
    raise ValueError(f"unknown maintenance question kind {kind!r}")


def maintenance_question(rng: random.Random, knowledge: Knowledge, entry: MaintenanceItem, kind: str) -> str:
    if kind == "custom":
        return rng.choice(entry.questions)
    pattern = rng.choice(knowledge.questions["maintenance"][kind])
    return fill_question(pattern, {"action": entry.action, "item": entry.item})


def interval_reference(entry: MaintenanceItem, output: str) -> dict[str, float]:
    """The interval numbers the answer states, keyed with their unit."""
    from carexpert.dataset.records import stated_reference

    candidates: dict[str, tuple[float, str]] = {}
    if entry.miles:
        low, high = entry.miles
        candidates["interval_low_miles"] = (low, units.fmt_int(low))
        candidates["interval_high_miles"] = (high, units.fmt_int(high))
        candidates["interval_low_km"] = (units.miles_to_km_rounded(low, KM_STEP),
                                         units.fmt_int(units.miles_to_km_rounded(low, KM_STEP)))
        candidates["interval_high_km"] = (units.miles_to_km_rounded(high, KM_STEP),
                                          units.fmt_int(units.miles_to_km_rounded(high, KM_STEP)))
    return stated_reference(output, candidates)


def _builder(knowledge: Knowledge, entry: MaintenanceItem, kind: str):
    def build(rng: random.Random) -> Draft:
        output = frame(rng, maintenance_answer(rng, entry, kind), knowledge.answers["style"]["openers"])
        instruction = with_lead_in(rng, capitalize_first(maintenance_question(rng, knowledge, entry, kind)),
                                   knowledge.questions["framing"])
        return Draft(instruction, output, kind, (entry.fact_id,), reference=interval_reference(entry, output),
                     key_terms=terms_in(output, entry.key_terms))
    return build


def _months(months: tuple[int, int]) -> str:
    low, high = months
    if low == high == 1:
        return "once a month"
    if low == high == 12:
        return "once a year"
    if low == high:
        return f"{low} months"
    if low % 12 == 0 and high % 12 == 0:
        return f"{low // 12} to {high // 12} years"
    return f"{low} to {high} months"
