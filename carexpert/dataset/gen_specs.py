"""Specs questions: one vehicle's power, torque, 0-60, weight, economy, price or spec sheet.

Every number comes from ``vehicles.csv`` through ``vehicle_values``; conversions (kW,
N·m, kg, L/100 km) come from ``units``. When the table has no figure, the answer says so
instead of guessing, and questions about invented models are refused (``expect_refusal``).
"""

from __future__ import annotations

import random

from carexpert.dataset.asking import ask_about, frame
from carexpert.dataset.records import Draft, Item, stated_reference
from carexpert.dataset.text import compose
from carexpert.dataset.vehicle_text import pick_name, vehicle_reference, vehicle_values
from carexpert.knowledge import FictionalModel, Knowledge, Vehicle

# Which table field each kind needs (None = always answerable), and how to name it when unknown.
SPEC_KINDS = {
    "hp": ("hp", "horsepower"), "kw": ("hp", None), "torque": ("torque_lb_ft", "torque"),
    "nm": ("torque_lb_ft", None), "hp_torque": ("torque_lb_ft", None),
    "zero_to_sixty": ("zero_to_sixty_s", "0-60 mph"), "weight": ("curb_weight_lb", "curb weight"),
    "weight_kg": ("curb_weight_lb", None), "mpg": ("mpg_combined", "EPA fuel-economy"),
    "l100": ("mpg_combined", None), "msrp": ("msrp_usd", "base MSRP"), "overview": (None, None),
}
# The figures each kind of question asks for, as ``vehicle_reference`` keys them (None: every figure).
# A spec item's reference holds these, where its answer states them: a template that adds "making
# 182 hp" to a price answer does not make the horsepower part of what a right answer must give.
# Extra figures an answer states are judged by the hallucinated-figure check
# (carexpert.evaluation.figures), against every figure the store holds for the vehicle.
_POWER = frozenset({"hp", "power_kw"})
_TORQUE = frozenset({"torque_lb_ft", "torque_nm"})
_MASS = frozenset({"curb_weight_lb", "curb_weight_kg"})
_ECONOMY = frozenset({"mpg", "fuel_l_100km"})
ASKED_FIGURES: dict[str, frozenset[str] | None] = {
    "hp": _POWER, "kw": _POWER, "torque": _TORQUE, "nm": _TORQUE, "hp_torque": _POWER | _TORQUE,
    "zero_to_sixty": frozenset({"zero_to_sixty_s"}), "weight": _MASS, "weight_kg": _MASS,
    "mpg": _ECONOMY, "l100": _ECONOMY, "msrp": frozenset({"msrp_usd"}), "overview": None,
}
FICTIONAL_FIELDS = {"hp": "horsepower", "torque": "torque", "overview": "specifications", "msrp": "price",
                    "zero_to_sixty": "0-60 time", "mpg": "fuel economy", "weight": "curb weight"}
FICTIONAL_EV_FIELDS = {"range": "range"}


def spec_items(knowledge: Knowledge) -> list[Item]:
    """Questions whose answer is a published figure."""
    items = []
    for vehicle in knowledge.vehicles:
        for kind, (column, _) in SPEC_KINDS.items():
            if vehicle.is_electric and kind in ("mpg", "l100"):
                continue
            if column is None or getattr(vehicle, column) is not None:
                items.append(Item(f"spec:{vehicle.id}:{kind}", (vehicle.fact_id,),
                                  _spec_builder(knowledge, vehicle, kind)))
    return items


def unknown_items(knowledge: Knowledge) -> list[Item]:
    """Questions about a figure the table lacks: the answer declines to guess."""
    items = []
    for vehicle in knowledge.vehicles:
        for kind in ("hp", "zero_to_sixty", "msrp", "mpg"):
            column, label = SPEC_KINDS[kind]
            assert column is not None and label is not None  # these four kinds name a column and a label
            if getattr(vehicle, column) is None and not (vehicle.is_electric and kind == "mpg"):
                items.append(Item(f"unknown:{vehicle.id}:{kind}", (vehicle.fact_id,),
                                  _unknown_builder(knowledge, vehicle, kind, label)))
    return items


def fictional_items(knowledge: Knowledge, kinds: tuple[str, ...] = tuple(FICTIONAL_FIELDS)) -> list[Item]:
    return [Item(f"fictional:{model.id}:{kind}", (model.fact_id,), _fictional_builder(knowledge, model, kind))
            for model in knowledge.fictional for kind in kinds]


def spec_answer(rng: random.Random, knowledge: Knowledge, vehicle: Vehicle, kind: str) -> str | None:
    values = vehicle_values(knowledge, vehicle)
    return compose(rng, knowledge.answers["specs"][kind], values)


def asked_reference(output: str, vehicle: Vehicle, kind: str) -> dict[str, float]:
    """The figures a ``kind`` question asks for that ``output`` states (key -> number): the reference
    a right answer is scored against."""
    stated = stated_reference(output, vehicle_reference(vehicle))
    asked = ASKED_FIGURES[kind]
    return stated if asked is None else {key: value for key, value in stated.items() if key in asked}


def _spec_builder(knowledge: Knowledge, vehicle: Vehicle, kind: str):
    def build(rng: random.Random) -> Draft | None:
        body = spec_answer(rng, knowledge, vehicle, kind)
        if body is None:
            return None
        style = knowledge.answers["style"]
        output = frame(rng, body, style["openers"], style["vehicle_closers"])
        pattern = rng.choice(knowledge.questions["specs"][kind])
        instruction, input_text = ask_about(rng, pattern, pick_name(rng, knowledge, vehicle))
        return Draft(instruction, output, kind, (vehicle.fact_id,), input_text,
                     reference=asked_reference(output, vehicle, kind))
    return build


def _unknown_builder(knowledge: Knowledge, vehicle: Vehicle, kind: str, label: str):
    def build(rng: random.Random) -> Draft | None:
        values = dict(vehicle_values(knowledge, vehicle), field=label)
        first = compose(rng, knowledge.answers["specs"]["unknown"], values)
        known = compose(rng, knowledge.answers["specs"]["unknown_known"], values)
        output = " ".join(part for part in (first, known) if part)
        pattern = rng.choice(knowledge.questions["specs"][kind])
        instruction, input_text = ask_about(rng, pattern, pick_name(rng, knowledge, vehicle))
        return Draft(instruction, output, f"unknown_{kind}", (vehicle.fact_id,), input_text,
                     reference=stated_reference(output, vehicle_reference(vehicle)))
    return build


def fictional_name(rng: random.Random, model: FictionalModel) -> str:
    return rng.choice([f"{model.year} {model.make} {model.model}", f"{model.make} {model.model}"])


def refusal(rng: random.Random, knowledge: Knowledge, model: FictionalModel, field: str) -> str:
    """'I'm not aware of a 2024 Toyota Corvana ...' with a real model it may be confused with."""
    values = {"year": model.year, "make": model.make, "model": model.model, "field": field,
              "suggestion": knowledge.vehicle(rng.choice(model.suggest)).name if model.suggest else None}
    slots = knowledge.answers["fictional"]["refuse_make" if model.fictional_make else "refuse"]
    return compose(rng, slots, values) or ""


def _fictional_builder(knowledge: Knowledge, model: FictionalModel, kind: str):
    def build(rng: random.Random) -> Draft:
        output = refusal(rng, knowledge, model, {**FICTIONAL_FIELDS, **FICTIONAL_EV_FIELDS}[kind])
        section = "evs" if kind == "range" else "specs"
        pattern = rng.choice(knowledge.questions[section][kind])
        instruction, input_text = ask_about(rng, pattern, fictional_name(rng, model))
        return Draft(instruction, output, f"fictional_{kind}", (model.fact_id,), input_text, expect_refusal=True)
    return build
