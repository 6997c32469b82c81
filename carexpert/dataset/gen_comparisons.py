"""Vehicle-versus-vehicle comparisons, computed from the table.

Pairs are every two vehicles of one segment plus the curated rivals (Camry vs Accord,
F-150 vs Silverado, ...). The answer states both cars' figures, the differences (computed,
never typed in), and a verdict that follows from them. Comparing a real car with an
invented one gets a refusal for the invented half.
"""

from __future__ import annotations

import itertools
import random

from carexpert.dataset import units
from carexpert.dataset.asking import fill_question, frame
from carexpert.dataset.gen_specs import fictional_name
from carexpert.dataset.records import Draft, Item, stated_reference
from carexpert.dataset.text import a_or_an, compose, human_list
from carexpert.dataset.vehicle_text import (
    pick_name,
    reference_prefix,
    vehicle_reference,
)
from carexpert.knowledge import DRIVETRAINS, FictionalModel, Knowledge, Vehicle


def vehicle_pairs(knowledge: Knowledge) -> list[tuple[Vehicle, Vehicle]]:
    """Same-segment pairs plus curated rivals, each unordered pair once, in table order."""
    pairs: list[tuple[Vehicle, Vehicle]] = []
    seen: set[frozenset[str]] = set()
    candidates = [(knowledge.vehicle(a), knowledge.vehicle(b)) for a, b in knowledge.rivals]
    candidates += [(a, b) for a, b in itertools.combinations(knowledge.vehicles, 2) if a.segment == b.segment]
    for a, b in candidates:
        key = frozenset((a.id, b.id))
        if key not in seen:
            seen.add(key)
            pairs.append((a, b))
    return pairs


def comparison_kinds(a: Vehicle, b: Vehicle) -> list[str]:
    kinds = ["overall"]
    for kind, column in (("power", "hp"), ("efficiency", "mpg_combined"), ("ev_range", "ev_range_mi"),
                         ("price", "msrp_usd"), ("acceleration", "zero_to_sixty_s")):
        if getattr(a, column) is not None and getattr(b, column) is not None:
            kinds.append(kind)
    return kinds


def comparison_items(knowledge: Knowledge) -> list[Item]:
    return [Item(f"compare:{a.id}:{b.id}:{kind}", (a.fact_id, b.fact_id), _builder(knowledge, a, b, kind))
            for a, b in vehicle_pairs(knowledge) for kind in comparison_kinds(a, b)]


def fictional_comparison_items(knowledge: Knowledge) -> list[Item]:
    items = []
    for model in knowledge.fictional:
        others = model.suggest or (knowledge.vehicles[hash_index(model.id, len(knowledge.vehicles))].id,)
        for other_id in others:
            other = knowledge.vehicle(other_id)
            items.append(Item(f"compare:{model.id}:{other.id}", (model.fact_id, other.fact_id),
                              _fictional_builder(knowledge, model, other)))
    return items


def hash_index(text: str, size: int) -> int:
    """A stable index from a string (Python's hash() changes between runs)."""
    return sum(ord(c) * (i + 1) for i, c in enumerate(text)) % size


def short_name(a: Vehicle, other: Vehicle) -> str:
    """What to call a car after the first mention: 'Camry', 'Mustang GT (fastback)', 'Polestar 2'."""
    if a.model == other.model:
        return f"{a.model} {a.trim}"
    if not any(c.isalpha() for c in a.model) or len(a.model) < 3:
        return f"{a.make} {a.model}"
    return a.model


def compare_answer(rng: random.Random, a: Vehicle, b: Vehicle, kind: str) -> str:
    sa, sb = short_name(a, b), short_name(b, a)
    if kind == "overall":
        return _overall(rng, a, b, sa, sb)
    return _single(rng, a, b, sa, sb, kind)


def _overall(rng: random.Random, a: Vehicle, b: Vehicle, sa: str, sb: str) -> str:
    intro = rng.choice([f"Here's how the {a.name} and the {b.name} compare.",
                        f"Let's put the {a.name} next to the {b.name}.",
                        f"Good matchup: the {a.name} versus the {b.name}."])
    parts = [intro,
             (f"The {sa} uses {a_or_an(a.engine)} with {a_or_an(a.transmission)} and {DRIVETRAINS[a.drivetrain]}, "
             f"while the {sb} uses {a_or_an(b.engine)} with {a_or_an(b.transmission)} and {DRIVETRAINS[b.drivetrain]}.")]
    for kind in ("power", "acceleration", "efficiency", "ev_range", "mixed_energy", "weight", "price"):
        sentence = _attribute_sentence(a, b, sa, sb, kind)
        if sentence:
            parts.append(sentence)
    parts.append(_verdict(rng, a, b, sa, sb))
    return " ".join(parts)


def _output(v: Vehicle) -> str | None:
    if v.hp is None:
        return None
    torque = (f" and {v.torque_lb_ft} lb-ft ({units.fmt_int(v.torque_nm)} N·m)"
              if v.torque_lb_ft and v.torque_nm is not None else "")
    return f"{v.hp} hp ({units.hp_to_kw(v.hp)} kW){torque}"


def _t60_origin(v: Vehicle) -> str:
    """Whose 0-60 figure it is: a maker's claim and a magazine's measurement are not the same kind of number."""
    return f"{v.make}'s claim" if v.zero_to_sixty_is_claim else f"{v.zero_to_sixty_source}'s measurement"


def _attribute_sentence(a: Vehicle, b: Vehicle, sa: str, sb: str, kind: str) -> str | None:
    if kind == "power" and a.hp and b.hp:
        text = f"The {sa} makes {_output(a)}, versus {_output(b)} for the {sb}."
        if a.hp != b.hp:
            winner = sa if a.hp > b.hp else sb
            text += f" That's {abs(a.hp - b.hp)} hp more for the {winner}."
        return text
    if kind == "acceleration" and a.zero_to_sixty_s and b.zero_to_sixty_s:
        if a.zero_to_sixty_is_claim and b.zero_to_sixty_is_claim:
            return (f"The manufacturers quote 0-60 mph in {units.fmt_decimal(a.zero_to_sixty_s)} seconds for the {sa} "
                    f"and {units.fmt_decimal(b.zero_to_sixty_s)} seconds for the {sb}.")
        return (f"0-60 mph takes {units.fmt_decimal(a.zero_to_sixty_s)} seconds for the {sa} ({_t60_origin(a)}) "
                f"and {units.fmt_decimal(b.zero_to_sixty_s)} seconds for the {sb} ({_t60_origin(b)}).")
    if kind == "efficiency" and a.mpg_combined and b.mpg_combined:
        if a.mpg_combined == b.mpg_combined:
            return f"Both are EPA-rated at {a.mpg_combined} mpg combined."
        return f"The EPA rates the {sa} at {a.mpg_combined} mpg combined and the {sb} at {b.mpg_combined} mpg."
    if kind == "ev_range" and a.ev_range_mi and b.ev_range_mi and a.is_electric and b.is_electric:
        if a.ev_range_mi == b.ev_range_mi:
            return f"Both have an EPA-rated range of {a.ev_range_mi} miles."
        return f"EPA range is {a.ev_range_mi} miles for the {sa} and {b.ev_range_mi} miles for the {sb}."
    if kind == "mixed_energy" and a.is_electric != b.is_electric:
        ev, ice = (a, b) if a.is_electric else (b, a)
        ev_name, ice_name = (sa, sb) if a.is_electric else (sb, sa)
        economy = f" and is rated at {ice.mpg_combined} mpg combined" if ice.mpg_combined else ""
        return (f"The {ev_name} is fully electric with {ev.ev_range_mi} miles of EPA range, while the {ice_name} "
                f"burns gasoline{economy}.")
    if kind == "weight" and a.curb_weight_lb and b.curb_weight_lb:
        return (f"Curb weight is {units.fmt_int(a.curb_weight_lb)} lb for the {sa} and "
                f"{units.fmt_int(b.curb_weight_lb)} lb for the {sb}.")
    if kind == "price" and a.msrp_usd and b.msrp_usd:
        if a.msrp_usd == b.msrp_usd:
            return f"Both start at {units.fmt_usd(a.msrp_usd)}."
        cheaper = sa if a.msrp_usd < b.msrp_usd else sb
        return (f"Base MSRP is {units.fmt_usd(a.msrp_usd)} for the {sa} and {units.fmt_usd(b.msrp_usd)} for the {sb}, "
                f"so the {cheaper} costs {units.fmt_usd(abs(a.msrp_usd - b.msrp_usd))} less to start.")
    return None


def _verdict(rng: random.Random, a: Vehicle, b: Vehicle, sa: str, sb: str) -> str:
    strengths: dict[str, list[str]] = {sa: [], sb: []}
    for label, column, higher_is_better in (("more power", "hp", True), ("better fuel economy", "mpg_combined", True),
                                            ("more range", "ev_range_mi", True), ("a lower price", "msrp_usd", False)):
        x, y = getattr(a, column), getattr(b, column)
        if x is None or y is None or x == y:
            continue
        a_wins = (x > y) == higher_is_better
        strengths[sa if a_wins else sb].append(label)
    if strengths[sa] and strengths[sb]:
        return (f"Bottom line: the {sa} gives you {human_list(strengths[sa])}, while the {sb} offers "
                f"{human_list(strengths[sb])}, so it comes down to which matters more to you. Test-drive both.")
    winner = sa if strengths[sa] else sb if strengths[sb] else None
    if winner:
        return (f"On paper the {winner} comes out ahead with {human_list(strengths[winner])}, but comfort, "
                f"features, reliability and the deal you get matter too, so drive both before deciding.")
    return rng.choice(["They're closely matched on paper, so choose on comfort, features and the price you can negotiate.",
                       "On the numbers it's nearly a tie; a test drive will tell you more than the spec sheet."])


def _single(rng: random.Random, a: Vehicle, b: Vehicle, sa: str, sb: str, kind: str) -> str:
    column, unit, higher_wins, label = {
        "power": ("hp", "hp", True, "more powerful"), "efficiency": ("mpg_combined", "mpg", True, "more fuel-efficient"),
        "ev_range": ("ev_range_mi", "miles", True, "longer-range"), "price": ("msrp_usd", "usd", False, "cheaper"),
        "acceleration": ("zero_to_sixty_s", "seconds", False, "quicker")}[kind]
    x, y = getattr(a, column), getattr(b, column)

    def show(value: float) -> str:
        if unit == "usd":
            return units.fmt_usd(value)
        return f"{units.fmt_decimal(value)} {unit}" if unit == "seconds" else f"{value} {unit}"

    if x == y:
        return f"They're tied: both the {a.name} and the {b.name} come in at {show(x)}."
    (win, wv, lose, lv) = (a, x, b, y) if (x > y) == higher_wins else (b, y, a, x)
    diff = abs(x - y)
    diff_text = units.fmt_usd(diff) if unit == "usd" else (f"{units.fmt_decimal(diff)} seconds" if unit == "seconds"
                                                            else f"{diff} {unit}")
    lead = rng.choice([f"The {win.name} is the {label} of the two", f"The {win.name} wins here"])
    text = f"{lead}: {show(wv)} versus {show(lv)} for the {lose.name}, a difference of {diff_text}."
    if kind == "power" and a.torque_lb_ft and b.torque_lb_ft:
        text += f" Torque is {a.torque_lb_ft} lb-ft for the {sa} and {b.torque_lb_ft} lb-ft for the {sb}."
    if kind == "efficiency":
        text += (f" In metric that's {units.fmt_decimal(units.mpg_to_l100km(wv))} versus "
                 f"{units.fmt_decimal(units.mpg_to_l100km(lv))} L/100 km.")
    if kind == "price":
        text += " Compare equipment too: the cheaper car may lack features you want."
    if kind == "acceleration" and not (a.zero_to_sixty_is_claim and b.zero_to_sixty_is_claim):
        text += (f" Note the sources differ: the {sa}'s time is {_t60_origin(a)} and the {sb}'s is "
                 f"{_t60_origin(b)}.")
    return text


def comparison_reference(a: Vehicle, b: Vehicle, output: str) -> dict[str, float]:
    candidates = {**vehicle_reference(a, reference_prefix(a)), **vehicle_reference(b, reference_prefix(b))}
    for key, column, fmt in (("power_difference_hp", "hp", str), ("torque_difference_lb_ft", "torque_lb_ft", str),
                             ("mpg_difference_mpg", "mpg_combined", str), ("range_difference_mi", "ev_range_mi", str),
                             ("price_difference_usd", "msrp_usd", units.fmt_usd),
                             ("zero_to_sixty_difference_s", "zero_to_sixty_s", units.fmt_decimal)):
        x, y = getattr(a, column), getattr(b, column)
        if x is not None and y is not None and x != y:
            diff = abs(x - y)
            candidates[key] = (round(diff, 1), fmt(diff))
    return stated_reference(output, candidates)


def _builder(knowledge: Knowledge, a: Vehicle, b: Vehicle, kind: str):
    def build(rng: random.Random) -> Draft:
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        body = compare_answer(rng, first, second, kind)
        output = frame(rng, body, knowledge.answers["style"]["openers"])
        names = {"a": pick_name(rng, knowledge, first), "b": pick_name(rng, knowledge, second)}
        if kind == "overall" and rng.random() < 0.2:
            instruction = rng.choice(["Compare these two cars.", "Which of these two would you pick, and why?",
                                      "How do these cars compare?"])
            input_text = f"{names['a']} vs {names['b']}"
        else:
            instruction, input_text = fill_question(rng.choice(knowledge.questions["comparisons"][kind]), names), ""
        return Draft(instruction, output, f"compare_{kind}", (first.fact_id, second.fact_id), input_text,
                     reference=comparison_reference(first, second, output))
    return build


def _fictional_builder(knowledge: Knowledge, model: FictionalModel, other: Vehicle):
    def build(rng: random.Random) -> Draft:
        values = {"make": model.make, "model": model.model, "other": other.name,
                  "other_hp": other.hp, "other_msrp": units.fmt_usd(other.msrp_usd) if other.msrp_usd else None,
                  "other_mpg": other.mpg_combined, "other_range": other.ev_range_mi}
        output = compose(rng, knowledge.answers["fictional"]["compare"], values) or ""
        fake = fictional_name(rng, model)
        names = {"a": fake, "b": pick_name(rng, knowledge, other)} if rng.random() < 0.5 else \
            {"a": pick_name(rng, knowledge, other), "b": fake}
        pattern = rng.choice(knowledge.questions["comparisons"]["overall"] + knowledge.questions["comparisons"]["power"])
        return Draft(fill_question(pattern, names), output, "compare_fictional", (model.fact_id, other.fact_id),
                     reference=stated_reference(output, vehicle_reference(other)), expect_refusal=True)
    return build
