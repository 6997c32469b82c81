"""Computed buying answers: what fits a budget, yearly fuel cost, and hybrid payback.

Budget answers pair the advice for that price tier (buying.toml) with real vehicles from
the table whose base MSRP fits, so recommendations are concrete and checkable. Fuel-cost
answers show the arithmetic with the assumptions stated in the answer.
"""

from __future__ import annotations

import random

from carexpert.dataset import units
from carexpert.dataset.asking import ask_about, fill_question, frame
from carexpert.dataset.records import Draft, Item, stated_reference
from carexpert.dataset.text import human_list
from carexpert.dataset.vehicle_text import (
    pick_name,
    reference_prefix,
    vehicle_reference,
)
from carexpert.knowledge import BudgetTier, Knowledge, Vehicle

BUDGETS = (15000, 18000, 20000, 22000, 25000, 28000, 30000, 35000, 40000, 45000, 50000, 60000, 75000, 100000)
MAX_PICKS = 4
BUDGET_FACT = "buying:budget-tiers"


def budget_items(knowledge: Knowledge) -> list[Item]:
    items = [Item(f"budget:any:{budget}", (BUDGET_FACT,), _budget_builder(knowledge, budget, None))
             for budget in BUDGETS]
    for segment in knowledge.segments:
        prices = sorted(v.msrp_usd for v in knowledge.vehicles if v.segment == segment and v.msrp_usd)
        for budget in sorted({-(-price // 5000) * 5000 for price in prices}):
            items.append(Item(f"budget:{segment}:{budget}", (BUDGET_FACT,), _budget_builder(knowledge, budget, segment)))
    return items


def fuel_cost_items(knowledge: Knowledge) -> list[Item]:
    items = []
    for vehicle in knowledge.vehicles:
        if vehicle.mpg_combined and not vehicle.is_electric:
            items.append(Item(f"fuel:{vehicle.id}", (vehicle.fact_id,), _fuel_builder(knowledge, vehicle, False)))
            items.append(Item(f"fuel:{vehicle.id}:custom", (vehicle.fact_id,), _fuel_builder(knowledge, vehicle, True)))
    for hybrid_id, gas_id in knowledge.hybrid_siblings:
        hybrid, gas = knowledge.vehicle(hybrid_id), knowledge.vehicle(gas_id)
        items.append(Item(f"savings:{hybrid.id}", (hybrid.fact_id, gas.fact_id), _savings_builder(knowledge, hybrid, gas)))
    return items


def budget_picks(knowledge: Knowledge, budget: int, segment: str | None, rng: random.Random) -> list[Vehicle]:
    """Up to four vehicles at or under the budget: the priciest that fit, one per segment when open-ended."""
    fits = [v for v in knowledge.vehicles if v.msrp_usd and v.msrp_usd <= budget and (segment is None or v.segment == segment)]
    fits.sort(key=lambda v: (-(v.msrp_usd or 0), v.id))  # every fit has a price
    if segment is not None:
        return fits[:MAX_PICKS]
    picks, segments = [], set()
    for vehicle in fits:
        if vehicle.segment not in segments:
            picks.append(vehicle)
            segments.add(vehicle.segment)
    return sorted(rng.sample(picks, min(MAX_PICKS, len(picks))), key=lambda v: v.msrp_usd or 0)


def tier_for(knowledge: Knowledge, budget: int) -> BudgetTier:
    return next(t for t in knowledge.budget_tiers if budget <= t.max_usd)


def budget_answer(rng: random.Random, knowledge: Knowledge, budget: int, segment: str | None) -> tuple[str, list[Vehicle]]:
    picks = budget_picks(knowledge, budget, segment, rng)
    label = knowledge.segments[segment] if segment else "new car"
    advice = tier_for(knowledge, budget).advice
    if not picks:
        return ((f"{advice} Among the vehicles I have figures for, none has a base MSRP at or under "
                f"{units.fmt_usd(budget)}, so look at lightly used or certified pre-owned options."), [])
    lead = rng.choice([f"From the models I know, {label} options with a base MSRP at or under {units.fmt_usd(budget)} include",
                       f"Good {label} candidates that start at or under {units.fmt_usd(budget)}:"])
    listed = human_list([_pick_text(v, knowledge) for v in picks])
    tail = rng.choice(["Taxes, fees and destination come on top of MSRP, so leave some room.",
                       "Remember the out-the-door price adds tax, registration and destination to MSRP.",
                       "Test-drive your top two and compare insurance quotes before deciding."])
    return f"{advice} {lead} {listed}. {tail}", picks


def _pick_text(vehicle: Vehicle, knowledge: Knowledge) -> str:
    economy = (f"{vehicle.mpg_combined} mpg combined" if vehicle.mpg_combined else
               f"{vehicle.ev_range_mi} miles of EPA range" if vehicle.ev_range_mi else None)
    details = ", ".join(x for x in (knowledge.segments[vehicle.segment], units.fmt_usd(vehicle.msrp_usd) if vehicle.msrp_usd else None,
                                    f"{vehicle.hp} hp" if vehicle.hp else None, economy) if x)
    return f"the {vehicle.name} ({details})"


def _budget_builder(knowledge: Knowledge, budget: int, segment: str | None):
    def build(rng: random.Random) -> Draft:
        body, picks = budget_answer(rng, knowledge, budget, segment)
        output = frame(rng, body, knowledge.answers["style"]["openers"])
        values = {"budget": units.fmt_int(budget), "segment": knowledge.segments[segment] if segment else None}
        pattern = rng.choice(knowledge.questions["buying"]["budget_segment" if segment else "budget_any"])
        candidates: dict[str, tuple[float, str]] = {"budget_usd": (budget, units.fmt_usd(budget))}
        for vehicle in picks:
            candidates.update(vehicle_reference(vehicle, reference_prefix(vehicle)))
        return Draft(fill_question(pattern, values), output, "budget_segment" if segment else "budget",
                     (BUDGET_FACT, *(v.fact_id for v in picks)), reference=stated_reference(output, candidates))
    return build


def fuel_answer(vehicle: Vehicle, miles: int, price: float) -> tuple[str, dict[str, tuple[float, str]]]:
    mpg = vehicle.mpg_combined
    assert mpg is not None, vehicle.id  # fuel questions are asked only of cars with an EPA figure
    gallons = units.annual_gallons(miles, mpg)
    cost = units.annual_fuel_cost(miles, mpg, price)
    text = (f"At {units.fmt_int(miles)} miles a year and ${units.fmt_price(price)} per gallon, the {vehicle.name} "
            f"(EPA {vehicle.mpg_combined} mpg combined) would use about {units.fmt_int(gallons)} gallons, or roughly "
            f"{units.fmt_usd(cost)} a year in fuel. Your real cost depends on your driving, local prices and whether "
            f"the engine wants premium fuel.")
    candidates: dict[str, tuple[float, str]] = {
        "annual_fuel_cost_usd": (cost, units.fmt_usd(cost)), "fuel_used_gal": (gallons, units.fmt_int(gallons)),
        "mpg": (mpg, str(mpg)), "annual_miles": (miles, units.fmt_int(miles))}
    return text, candidates


def _fuel_builder(knowledge: Knowledge, vehicle: Vehicle, custom: bool):
    assumptions = knowledge.assumptions

    def build(rng: random.Random) -> Draft:
        miles, price = int(assumptions["annual_miles"]), float(assumptions["gas_price_usd"])
        if custom:
            miles = int(rng.choice(assumptions["alt_annual_miles"]))
            price = float(rng.choice(assumptions["alt_gas_prices_usd"]))
        body, candidates = fuel_answer(vehicle, miles, price)
        output = frame(rng, body, knowledge.answers["style"]["openers"])
        name = pick_name(rng, knowledge, vehicle)
        if custom:
            pattern = rng.choice(knowledge.questions["buying"]["fuel_cost_custom"])
            instruction = fill_question(pattern, {"v": name, "miles": units.fmt_int(miles), "price": units.fmt_price(price)})
            input_text = ""
        else:
            instruction, input_text = ask_about(rng, rng.choice(knowledge.questions["buying"]["fuel_cost"]), name)
        return Draft(instruction, output, "fuel_cost", (vehicle.fact_id,), input_text,
                     reference=stated_reference(output, candidates))
    return build


def savings_answer(knowledge: Knowledge, hybrid: Vehicle, gas: Vehicle) -> tuple[str, dict[str, tuple[float, str]]]:
    miles, price = int(knowledge.assumptions["annual_miles"]), float(knowledge.assumptions["gas_price_usd"])
    assert hybrid.mpg_combined is not None and gas.mpg_combined is not None  # the pairs are chosen with EPA figures
    hybrid_cost = units.annual_fuel_cost(miles, hybrid.mpg_combined, price)
    gas_cost = units.annual_fuel_cost(miles, gas.mpg_combined, price)
    savings = gas_cost - hybrid_cost
    text = (f"At {units.fmt_int(miles)} miles a year and ${units.fmt_price(price)} per gallon, the {hybrid.name} "
            f"({hybrid.mpg_combined} mpg combined) would cost about {units.fmt_usd(hybrid_cost)} a year in fuel, versus "
            f"{units.fmt_usd(gas_cost)} for the {gas.name} ({gas.mpg_combined} mpg), a saving of about "
            f"{units.fmt_usd(savings)} a year.")
    candidates = {"annual_savings_usd": (savings, units.fmt_usd(savings)),
                  "hybrid_fuel_cost_usd": (hybrid_cost, units.fmt_usd(hybrid_cost)),
                  "gas_fuel_cost_usd": (gas_cost, units.fmt_usd(gas_cost)),
                  **vehicle_reference(hybrid, reference_prefix(hybrid)), **vehicle_reference(gas, reference_prefix(gas))}
    if hybrid.msrp_usd and gas.msrp_usd and savings > 0:
        premium = hybrid.msrp_usd - gas.msrp_usd
        years = units.payback_years(premium, savings)
        text += (f" The hybrid's base price is {units.fmt_usd(premium)} higher ({units.fmt_usd(hybrid.msrp_usd)} versus "
                 f"{units.fmt_usd(gas.msrp_usd)}), so it would take roughly {units.fmt_decimal(years)} years of fuel "
                 f"savings to break even; more if you mostly drive on the highway, less in city traffic. Note the two "
                 f"trims aren't equipped identically.")
        candidates["price_difference_usd"] = (premium, units.fmt_usd(premium))
        candidates["payback_years"] = (years, units.fmt_decimal(years))
    else:
        text += " The more of your driving is stop-and-go city traffic, the bigger the hybrid's advantage."
    return text, candidates


def _savings_builder(knowledge: Knowledge, hybrid: Vehicle, gas: Vehicle):
    def build(rng: random.Random) -> Draft:
        body, candidates = savings_answer(knowledge, hybrid, gas)
        output = frame(rng, body, knowledge.answers["style"]["openers"])
        kinds = ["hybrid_savings"] + (["hybrid_payback"] if "payback_years" in candidates else [])
        pattern = rng.choice(knowledge.questions["buying"][rng.choice(kinds)])
        names = {"hybrid": pick_name(rng, knowledge, hybrid), "gas": pick_name(rng, knowledge, gas)}
        return Draft(fill_question(pattern, names), output, "hybrid_savings", (hybrid.fact_id, gas.fact_id),
                     reference=stated_reference(output, candidates))
    return build
