"""Engine, electrification and drivetrain questions about one vehicle.

These tie the concepts to real cars: "Is the Accord turbocharged?", "How far does the
Ioniq 5 go on a charge?", "Does the Corolla have a CVT?". Transmission and drivetrain
answers add the one-sentence summary of the matching concept, so the record lists that
concept among its facts.
"""

from __future__ import annotations

import random

from carexpert.dataset.asking import ask_about, frame
from carexpert.dataset.records import Draft, Item, stated_reference, terms_in
from carexpert.dataset.text import compose
from carexpert.dataset.vehicle_text import pick_name, vehicle_reference, vehicle_values
from carexpert.knowledge import Concept, Knowledge, Vehicle

TRANSMISSION_CONCEPTS = {"cvt": "cvt", "dct": "dual-clutch-transmission", "automatic": "torque-converter-automatic",
                         "manual": "manual-transmission"}
DRIVETRAIN_CONCEPTS = {"FWD": "front-wheel-drive", "RWD": "rear-wheel-drive", "AWD": "all-wheel-drive",
                       "4WD": "four-wheel-drive"}
GAS_SAMPLE_EVERY = 4  # ask "is it electric/hybrid?" about every 4th gasoline car, not all of them


def engine_items(knowledge: Knowledge) -> list[Item]:
    items = []
    for vehicle in knowledge.vehicles:
        items.append(_item(knowledge, vehicle, "engines", "engine", "engine"))
        if not vehicle.is_electric and vehicle.hp and vehicle.induction != "electric":
            turbo = "turbo_yes" if "turbo" in vehicle.induction else "turbo_no"
            items.append(_item(knowledge, vehicle, "engines", "turbo", turbo))
            items.append(_item(knowledge, vehicle, "engines", "cylinders", "cylinders"))
    return items


def ev_vehicle_items(knowledge: Knowledge) -> list[Item]:
    items = []
    for index, vehicle in enumerate(knowledge.vehicles):
        if vehicle.is_electric:
            items += [_item(knowledge, vehicle, "evs", "range", "range"),
                      _item(knowledge, vehicle, "evs", "range_km", "range_km"),
                      _item(knowledge, vehicle, "evs", "motor", "motor"),
                      _item(knowledge, vehicle, "evs", "is_electric", "is_electric_yes"),
                      _item(knowledge, vehicle, "evs", "is_hybrid", "is_hybrid_ev")]
        elif vehicle.powertrain == "plug-in hybrid":
            items += [_item(knowledge, vehicle, "evs", "electric_range", "electric_range"),
                      _item(knowledge, vehicle, "evs", "is_electric", "is_electric_no_hybrid"),
                      _item(knowledge, vehicle, "evs", "is_hybrid", "is_hybrid_yes")]
        elif vehicle.is_electrified:
            items += [_item(knowledge, vehicle, "evs", "is_electric", "is_electric_no_hybrid"),
                      _item(knowledge, vehicle, "evs", "is_hybrid", "is_hybrid_yes")]
        elif index % GAS_SAMPLE_EVERY == 0:
            items += [_item(knowledge, vehicle, "evs", "is_electric", "is_electric_no"),
                      _item(knowledge, vehicle, "evs", "is_hybrid", "is_hybrid_no")]
    return items


def tech_vehicle_items(knowledge: Knowledge) -> list[Item]:
    items = []
    for vehicle in knowledge.vehicles:
        items.append(_explained_item(knowledge, vehicle, "transmission", transmission_concept(knowledge, vehicle)))
        items.append(_explained_item(knowledge, vehicle, "drivetrain",
                                     knowledge.concept(DRIVETRAIN_CONCEPTS[vehicle.drivetrain])))
    return items


def transmission_concept(knowledge: Knowledge, vehicle: Vehicle) -> Concept | None:
    """The concept that explains this vehicle's gearbox (None for an EV's single speed)."""
    if vehicle.transmission_type == "ecvt":
        return knowledge.concept("series-hybrid" if "two-motor" in vehicle.transmission else "power-split-hybrid")
    concept_id = TRANSMISSION_CONCEPTS.get(vehicle.transmission_type)
    return knowledge.concept(concept_id) if concept_id else None


def _item(knowledge: Knowledge, vehicle: Vehicle, section: str, question_kind: str, answer_kind: str) -> Item:
    def build(rng: random.Random) -> Draft | None:
        body = compose(rng, knowledge.answers[section][answer_kind], vehicle_values(knowledge, vehicle))
        if body is None:
            return None
        style = knowledge.answers["style"]
        output = frame(rng, body, style["openers"], style["vehicle_closers"])
        pattern = rng.choice(knowledge.questions[section][question_kind])
        instruction, input_text = ask_about(rng, pattern, pick_name(rng, knowledge, vehicle))
        return Draft(instruction, output, answer_kind, (vehicle.fact_id,), input_text,
                     reference=stated_reference(output, vehicle_reference(vehicle)))
    return Item(f"{section}:{vehicle.id}:{answer_kind}", (vehicle.fact_id,), build)


def _explained_item(knowledge: Knowledge, vehicle: Vehicle, kind: str, concept: Concept | None) -> Item:
    facts = (vehicle.fact_id,) + ((concept.fact_id,) if concept else ())

    def build(rng: random.Random) -> Draft | None:
        values = vehicle_values(knowledge, vehicle)
        body = compose(rng, knowledge.answers["advanced_tech"][kind], values)
        if body is None:
            return None
        if concept is not None:
            body += " " + concept.summary
        elif kind == "transmission":
            body += " " + knowledge.answers["advanced_tech"]["single_speed"]
        output = frame(rng, body, knowledge.answers["style"]["openers"])
        pattern = rng.choice(knowledge.questions["advanced_tech"][kind])
        instruction, input_text = ask_about(rng, pattern, pick_name(rng, knowledge, vehicle))
        terms = terms_in(output, concept.key_terms) if concept else []
        return Draft(instruction, output, kind, facts, input_text, key_terms=terms,
                     reference=stated_reference(output, vehicle_reference(vehicle)))
    return Item(f"advanced_tech:{vehicle.id}:{kind}", facts, build)
