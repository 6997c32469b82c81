"""How a vehicle row reads in a question and in an answer.

``vehicle_values`` turns one row into the formatted fields the answer patterns use
("3,310", "151", "$26,420"), with None where the table has no figure, so a pattern that
needs a missing number is never chosen. ``vehicle_reference`` lists the numbers an
answer may state, keyed with their unit for evaluation.
"""

from __future__ import annotations

import random
from typing import Any

from carexpert.dataset import units
from carexpert.dataset.text import a_or_an, capitalize_first
from carexpert.knowledge import DRIVETRAINS, Knowledge, Vehicle

CYLINDER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 8: "eight", 10: "ten", 12: "twelve"}
POWERTRAIN_PHRASES = {"gas": "gasoline vehicle", "mild hybrid": "mild hybrid", "hybrid": "hybrid",
                      "plug-in hybrid": "plug-in hybrid", "electric": "battery electric vehicle"}
WHEELS = {"FWD": "front wheels", "RWD": "rear wheels", "AWD": "all four wheels", "4WD": "all four wheels"}


def vehicle_values(knowledge: Knowledge, vehicle: Vehicle) -> dict[str, Any]:
    """The fields answer patterns may use; a figure the table lacks is None."""
    v = vehicle
    segment = knowledge.segments[v.segment]
    values: dict[str, Any] = {
        "v": v.name, "V": f"The {v.name}", "make": v.make, "model": v.model, "year": v.model_year,
        "engine": v.engine, "a_engine": a_or_an(v.engine), "transmission": v.transmission,
        "a_transmission": a_or_an(v.transmission), "drive": DRIVETRAINS[v.drivetrain], "wheels": WHEELS[v.drivetrain],
        "body": v.body, "segment": segment, "a_segment": a_or_an(segment),
        "a_powertrain": a_or_an(POWERTRAIN_PHRASES[v.powertrain]),
        "cyl_words": CYLINDER_WORDS.get(v.cylinders) if v.cylinders else None,
        "hp": None, "kw": None, "tq": None, "nm": None, "t60": None, "t60_test": None, "tester": None,
        "lb": None, "kg": None,
        "mpg": None, "l100": None, "range": None, "range_km": None, "msrp": None,
    }
    if v.hp:
        values.update(hp=str(v.hp), kw=str(units.hp_to_kw(v.hp)))
    if v.torque_lb_ft and v.torque_nm is not None:
        values.update(tq=str(v.torque_lb_ft), nm=units.fmt_int(v.torque_nm))
    if v.zero_to_sixty_s:  # a maker's claim ({t60}) and a magazine's measurement ({t60_test}) read differently
        if v.zero_to_sixty_is_claim:
            values["t60"] = units.fmt_decimal(v.zero_to_sixty_s)
        else:
            values.update(t60_test=units.fmt_decimal(v.zero_to_sixty_s), tester=v.zero_to_sixty_source)
    if v.curb_weight_lb:
        values.update(lb=units.fmt_int(v.curb_weight_lb), kg=units.fmt_int(units.lb_to_kg(v.curb_weight_lb)))
    if v.mpg_combined:
        values.update(mpg=str(v.mpg_combined), l100=units.fmt_decimal(units.mpg_to_l100km(v.mpg_combined)))
    if v.ev_range_mi:
        values.update(range=str(v.ev_range_mi), range_km=units.fmt_int(units.miles_to_km(v.ev_range_mi)))
    if v.msrp_usd:
        values["msrp"] = units.fmt_usd(v.msrp_usd)
    return values


def vehicle_reference(vehicle: Vehicle, prefix: str = "") -> dict[str, tuple[float, str]]:
    """Every number an answer about this vehicle may state: key -> (value, as written)."""
    v = vehicle
    found: dict[str, tuple[float, str]] = {}

    def add(key: str, value: float | None, text: str | None = None) -> None:
        if value is not None:
            found[prefix + key] = (value, text if text is not None else units.fmt_int(value))

    add("hp", v.hp)
    add("power_kw", units.hp_to_kw(v.hp) if v.hp else None)
    add("torque_lb_ft", v.torque_lb_ft)
    add("torque_nm", v.torque_nm)
    if v.zero_to_sixty_s:
        add("zero_to_sixty_s", v.zero_to_sixty_s, units.fmt_decimal(v.zero_to_sixty_s))
    add("curb_weight_lb", v.curb_weight_lb)
    add("curb_weight_kg", units.lb_to_kg(v.curb_weight_lb) if v.curb_weight_lb else None)
    add("mpg", v.mpg_combined)
    if v.mpg_combined:
        l100 = units.mpg_to_l100km(v.mpg_combined)
        add("fuel_l_100km", l100, units.fmt_decimal(l100))
    add("range_mi", v.ev_range_mi)
    add("range_km", units.miles_to_km(v.ev_range_mi) if v.ev_range_mi else None)
    if v.msrp_usd:
        add("msrp_usd", v.msrp_usd, units.fmt_usd(v.msrp_usd))
    return found


def reference_prefix(vehicle: Vehicle) -> str:
    """Key prefix for a vehicle in multi-vehicle answers: 'toyota_camry_2024_le_'."""
    return vehicle.id.replace("-", "_") + "_"


def asked_names(knowledge: Knowledge, vehicle: Vehicle) -> list[str]:
    """Ways a user might name this vehicle in a question (answers always use the full name)."""
    v = vehicle
    trim = v.trim_suffix
    names = [v.name, f"{v.make} {v.model}{trim}"]
    if any(c.isalpha() for c in v.model) and len(v.model) >= 3:
        names.append(f"{v.model_year} {v.model}{trim}")
    same_model = [o for o in knowledge.vehicles if o.make == v.make and o.model == v.model]
    if len(same_model) == 1:
        names.append(f"{v.model_year} {v.make} {v.model}")
    return names


def pick_name(rng: random.Random, knowledge: Knowledge, vehicle: Vehicle) -> str:
    return rng.choice(asked_names(knowledge, vehicle))


def starts_sentence(text: str) -> str:
    return capitalize_first(text)
