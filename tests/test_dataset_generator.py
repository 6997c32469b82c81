"""The generator: deterministic, 1,500+ unique pairs in the seed's mix, numbers equal to the tables."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from carexpert.dataset import units
from carexpert.dataset.generator import DEFAULT_MIX, generate_examples
from carexpert.dataset.records import normalize_question
from carexpert.dataset.showcase import showcase_cases
from carexpert.knowledge import CATEGORIES, load_knowledge

NUMBER = re.compile(r"(?<![\w.\-])\$?\d[\d,]*(?:\.\d+)?(?!\w|[.,]\w|-\w)")
UNIT_TOKENS = re.compile(r"0-60|0 to 60|L/100 km|N·m|\d+-speed|\d+(?:\.\d+)?-liter|one fixed|\bSport\b")


@pytest.fixture(scope="module")
def records():
    return generate_examples(1600, 42)


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def test_same_seed_same_records_and_other_seed_differs(records):
    assert generate_examples(1600, 42) == records
    assert generate_examples(1600, 7) != records


def test_default_size_count_uniqueness_and_fields(records):
    assert len(records) == 1600
    keys = [normalize_question(r["instruction"], r["input"]) for r in records]
    assert len(set(keys)) == len(keys)
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert set(r) >= {"id", "instruction", "input", "output", "category", "fact_ids"}
        assert r["instruction"].strip() and r["output"].strip() and r["fact_ids"]
        assert "None" not in r["output"] and "{" not in r["output"]


def test_category_mix_matches_the_plan(records):
    counts = Counter(r["category"] for r in records)
    assert set(counts) == set(CATEGORIES)
    for category, share in DEFAULT_MIX.items():
        assert abs(counts[category] / len(records) - share) < 0.005, category
    assert abs(sum(DEFAULT_MIX.values()) - 1.0) < 1e-9


def test_other_sizes_hit_the_requested_count():
    assert len(generate_examples(250, 3)) == 250
    assert len(generate_examples(3000, 3)) == 3000


def allowed_numbers(vehicle) -> set[str]:
    """Every number an answer about this vehicle may state, recomputed here from the table."""
    values: set[float] = {vehicle.model_year, 0.746}
    for text in (vehicle.trim, vehicle.model, vehicle.engine, vehicle.transmission):  # "2.5T", "Model 3", "1LT"
        values.update(float(n) for n in re.findall(r"\d+(?:\.\d+)?", text))
    for column in ("hp", "torque_lb_ft", "torque_nm", "curb_weight_lb", "mpg_combined", "ev_range_mi", "msrp_usd",
                   "zero_to_sixty_s"):
        value = getattr(vehicle, column)
        if value is not None:
            values.add(value)
    if vehicle.hp:
        values.add(round(vehicle.hp * 0.745699872 + 1e-9))
    if vehicle.curb_weight_lb:
        values.add(int(vehicle.curb_weight_lb * 0.45359237 + 0.5))
    if vehicle.mpg_combined:
        values.add(round(235.214583 / vehicle.mpg_combined + 1e-9, 1))
    if vehicle.ev_range_mi:
        values.add(int(vehicle.ev_range_mi * 1.609344 + 0.5))
    return values


def numbers_in(text: str) -> list[float]:
    text = UNIT_TOKENS.sub(" ", text)
    return [float(m.group(0).lstrip("$").replace(",", "")) for m in NUMBER.finditer(text)]


def test_every_number_in_a_spec_answer_equals_the_tables(records, knowledge):
    checked = 0
    for record in records:
        if record["category"] != "specs" or record.get("expect_refusal"):
            continue
        vehicle = knowledge.vehicle(record["fact_ids"][0].split(":", 1)[1])
        allowed = allowed_numbers(vehicle)
        for number in numbers_in(record["output"]):
            assert any(abs(number - a) < 1e-6 for a in allowed), (number, record["output"])
            checked += 1
        for key, value in record.get("reference", {}).items():
            assert any(abs(value - a) < 1e-6 for a in allowed), (key, value)
    assert checked > 300


def test_comparison_numbers_are_both_cars_figures_or_their_differences(records, knowledge):
    checked = 0
    for record in records:
        if not record["kind"].startswith("compare_") or not all(f.startswith("vehicle:") for f in record["fact_ids"]):
            continue
        a, b = (knowledge.vehicle(f.split(":", 1)[1]) for f in record["fact_ids"])
        allowed = allowed_numbers(a) | allowed_numbers(b)
        for column in ("hp", "torque_lb_ft", "mpg_combined", "ev_range_mi", "msrp_usd", "zero_to_sixty_s"):
            x, y = getattr(a, column), getattr(b, column)
            if x is not None and y is not None:
                allowed.add(round(abs(x - y), 1))
        for column in ("mpg_combined",):
            for v in (a, b):
                if getattr(v, column):
                    allowed.add(round(235.214583 / getattr(v, column) + 1e-9, 1))
        for number in numbers_in(record["output"]):
            assert any(abs(number - x) < 1e-6 for x in allowed), (number, record["output"])
            checked += 1
    assert checked > 100


def test_conversions_are_right():
    assert units.hp_to_kw(203) == 151 and units.miles_to_km(272) == 438 and units.lb_to_kg(3310) == 1501
    assert units.mpg_to_l100km(32) == 7.4 and units.round_half_up(352.5) == 353
    assert units.annual_fuel_cost(12000, 32, 3.5) == 1313


def test_fuel_cost_answers_show_correct_arithmetic(records, knowledge):
    for record in records:
        if record["kind"] != "fuel_cost":
            continue
        vehicle = knowledge.vehicle(record["fact_ids"][0].split(":", 1)[1])
        ref = record["reference"]
        price = float(re.search(r"\$(\d\.\d\d) per gallon", record["output"]).group(1))
        assert ref["mpg"] == vehicle.mpg_combined
        assert ref["annual_fuel_cost_usd"] == int(ref["annual_miles"] / vehicle.mpg_combined * price + 0.5)


def test_concept_answers_carry_the_key_terms_they_mention(records, knowledge):
    concept_records = [r for r in records if r.get("key_terms")]
    assert len(concept_records) > 500
    for record in concept_records:
        assert all(term.lower() in record["output"].lower() for term in record["key_terms"])


def test_made_up_models_are_refused_without_specs(records, knowledge):
    refusals = [r for r in records if r.get("expect_refusal")]
    assert len(refusals) >= 40
    assert {r["category"] for r in refusals} >= {"specs", "evs", "comparisons"}
    for record in refusals:
        fake = next(m for m in knowledge.fictional if f"fictional:{m.id}" in record["fact_ids"])
        assert fake.model in record["output"]
        if record["category"] == "specs":
            assert not re.search(r"\d+ (hp|lb-ft|mpg|seconds)", record["output"])


def test_showcase_questions_are_reserved_and_cover_every_category(records):
    cases = showcase_cases()
    assert {c["category"] for c in cases} == set(CATEGORIES)
    generated = {normalize_question(r["instruction"], r["input"]) for r in records}
    assert not generated & {normalize_question(c["instruction"], c["input"]) for c in cases}
    turbo = next(c for c in cases if "turbocharger and a supercharger" in c["instruction"])
    assert {"exhaust gas", "crankshaft"} <= set(turbo["key_terms"])
    camry = next(c for c in cases if c["category"] == "comparisons")
    assert camry["reference"]["toyota_camry_2024_le_hp"] == 203 and camry["reference"]["honda_accord_2023_lx_hp"] == 192
    oil = next(c for c in cases if c["category"] == "maintenance")
    assert oil["reference"]["interval_high_miles"] == 10000
