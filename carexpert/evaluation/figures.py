"""Hallucinated figures: spec numbers an answer states that the knowledge store does not back.

A grounded expert states a car's figures from the store or says it has none. An answer
*hallucinates a figure* when it states a spec number (a number with a car unit: hp, kW,
lb-ft, N·m, mpg, L/100 km, seconds, lb, kg, miles, km or a $ price) that is

- **made up**: about a model the store does not have (a made-up model), any spec figure
  except the figures of a real car the question also names;
- **contradicting** the store: in a unit family where the store has values for the
  vehicle(s) the question names, and matching none of them (after conversion, within
  ``eval.numeric_tolerance``): "the 2024 Camry LE makes 250 hp" when the store says 203;
- **not published**: in a unit family where the store's row for every vehicle the question
  names is blank (the Model 3's horsepower, which the maker does not publish).

Numbers the question gives ("at $3.00 a gallon"), figures of the item's reference (a
comparison's difference, a fuel-cost sum) and figures of the passages retrieval computed from
the store for the question (``carexpert.knowledge.derived``: every difference of a comparison,
not only the one the reference states) are never counted. Times count only in seconds
(a 0-60 claim, not "charges in 18 minutes"), dollars from $1,000 (a car's price, not
"$3.50 a gallon"), and only numbers written with their unit ("Ram 1500 and 262 lb-ft" does
not make the 1500 a torque). A range counts only when the store's value lies outside it.
The figures a question is about are put into the case's expectations
(``store_expectations``) when the evaluation data is built, from the record's ``fact_ids``
and the vehicle table, with the helper the dataset generator uses (``vehicle_reference``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from carexpert.evaluation.units import Quantity, extract_quantities, unit_family, unit_for_key

# Unit families of the figures a vehicle row holds, and which column leaves each blank.
CHECKED_FAMILIES = ("power", "torque", "economy", "time", "mass", "distance", "money")
_SECONDS_ONLY = {"time": "s"}  # a time figure counts only in seconds (0-60), not minutes or hours
_FACT_PREFIX = "vehicle:"
_MADE_UP_PREFIX = "fictional:"


def _folded(text: str) -> str:
    return re.sub(r"[\s\-]+", "", text.lower())


def named_in(question: str, vehicle: Any) -> bool:
    """Whether the question names this vehicle's model ("Camry", "F-150" / "F150", "Model 3")."""
    return _folded(vehicle.model) in _folded(question)


def lacking_families(vehicle: Any) -> set[str]:
    """The checked families whose figure the vehicle's row leaves blank ("not published")."""
    blank = {"power": vehicle.hp is None, "torque": vehicle.torque_lb_ft is None and vehicle.torque_nm is None,
             "time": vehicle.zero_to_sixty_s is None, "mass": vehicle.curb_weight_lb is None,
             "money": vehicle.msrp_usd is None,
             "economy": vehicle.mpg_combined is None and vehicle.powertrain != "electric",
             "distance": vehicle.ev_range_mi is None and vehicle.powertrain == "electric"}
    return {family for family, missing in blank.items() if missing}


def store_expectations(record: Mapping[str, Any], knowledge: Any) -> dict[str, Any]:
    """What the store says about the vehicles a record's question names (JSON-ready, {} when none).

    ``vehicles``: ids of the store's vehicles among the record's ``fact_ids`` that the question
    names; ``figures``: their figures keyed as the dataset keys them (``<id>_hp`` ...);
    ``lacks``: checked families no named vehicle has a figure for; ``made_up``: the question is
    about a model the store does not have.
    """
    from carexpert.dataset.vehicle_text import reference_prefix, vehicle_reference

    facts = [str(f) for f in record.get("fact_ids") or ()]
    question = f"{record.get('instruction') or ''} {record.get('input') or ''}"
    made_up = bool(record.get("expect_refusal")) or any(f.startswith(_MADE_UP_PREFIX) for f in facts)
    vehicles = []
    for fact in facts:
        if fact.startswith(_FACT_PREFIX):
            try:
                vehicle = knowledge.vehicle(fact[len(_FACT_PREFIX):])
            except KeyError:
                continue
            if named_in(question, vehicle):
                vehicles.append(vehicle)
    if not vehicles and not made_up:
        return {}
    figures: dict[str, float] = {}
    for vehicle in vehicles:
        keyed = vehicle_reference(vehicle, reference_prefix(vehicle))
        figures.update({key: value for key, (value, _) in keyed.items()})
    lacks = set.intersection(*(lacking_families(v) for v in vehicles)) if vehicles else set()
    return {"vehicles": [v.id for v in vehicles], "figures": figures,
            "lacks": sorted(lacks), "made_up": made_up}


def _known_values(keyed: Mapping[str, float]) -> list[tuple[str, str, float]]:
    """(family, unit, value) for each reference/store figure whose key names a unit."""
    known = []
    for key, value in keyed.items():
        unit = unit_for_key(key)
        if unit is not None:
            known.append((unit_family(unit), unit, float(value)))
    return known


def _within(value: float, reference: float, tolerance: float) -> bool:
    return abs(value - reference) <= tolerance * abs(reference) + 1e-9


def _consistent(quantity: Quantity, values: Iterable[tuple[str, str, float]], tolerance: float) -> bool:
    """The quantity states one of ``values`` (same family, after conversion; a range containing one)."""
    for family, unit, value in values:
        if family != quantity.family:
            continue
        low, high = quantity.value_in(unit)
        if _within(low, value, tolerance) or _within(high, value, tolerance) \
                or (quantity.is_range and low <= value <= high):
            return True
    return False


MIN_PRICE_USD = 1000.0  # a $ figure below this is a gallon, a fee or a part, not a car's price


def _written_unit(quantity: Quantity) -> bool:
    """The unit is written on the number itself ("262 lb-ft", "$28,400"), not lent by a list:
    in "269 lb-ft for the Ram 1500 and 262 lb-ft" the 1500 is a model name."""
    return any(c.isalpha() or c == "$" for c in quantity.text)


def spec_figures(answer: str) -> list[Quantity]:
    """The answer's spec figures: numbers written with a unit of a checked family (times in
    seconds only, prices from $1,000)."""
    return [q for q in extract_quantities(answer)
            if q.family in CHECKED_FAMILIES and _SECONDS_ONLY.get(q.family, q.unit) == q.unit and _written_unit(q)
            and not (q.family == "money" and q.high < MIN_PRICE_USD)]


def hallucinated_figures(answer: str, store: Mapping[str, Any] | None, *, reference: Mapping[str, float] | None = None,
                         question: str = "", tolerance: float = 0.03,
                         computed: Sequence[str] = ()) -> list[dict[str, str]] | None:
    """The figures ``answer`` states that the store does not back, each ``{"text", "family", "why"}``
    (why: ``made_up``, ``contradicts`` or ``not_published``); None when the item names no vehicle
    the store knows and no made-up one, so nothing can be judged. ``computed`` holds the texts of
    the derived passages retrieval gave the question: their figures are the store's, worked out."""
    store = store or {}
    if not store.get("made_up") and not store.get("vehicles"):
        return None
    allowed = _known_values({**dict(store.get("figures") or {}), **dict(reference or {})})
    given = [q for text in (question, *computed) for q in extract_quantities(text) if q.unit is not None]
    given_values = [(q.family, q.unit, value) for q in given if q.family and q.unit for value in (q.low, q.high)]
    families_known = {family for family, _, _ in _known_values(dict(store.get("figures") or {}))}
    lacks = set(store.get("lacks") or ())
    found = []
    for quantity in spec_figures(answer):
        if _consistent(quantity, allowed, tolerance) or _consistent(quantity, given_values, tolerance):
            continue
        if store.get("made_up"):
            why = "made_up"
        elif quantity.family in families_known:
            why = "contradicts"
        elif quantity.family in lacks:
            why = "not_published"
        else:
            continue
        found.append({"text": quantity.text, "family": str(quantity.family), "why": why})
    return found


def hallucination_rate(results: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of judged answers (``hallucinated`` not None) that state at least one hallucinated figure."""
    judged = [r.get("hallucinated") for r in results if r.get("hallucinated") is not None]
    return round(sum(1 for found in judged if found) / len(judged), 4) if judged else None
