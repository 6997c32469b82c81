"""Passages computed for one question from the store's vehicle rows: comparisons and fuel costs.

A 270M model copies a figure from its context reliably but cannot subtract: asked which of two
trucks is more powerful it writes "305 hp versus 280 hp, a difference of 11 hp". So the
arithmetic a question needs is done here, at retrieval time, and handed to the model as one
more passage whose figures it copies like any other:

- **comparison** (the question names two store vehicles): for every figure both rows have,
  both values, the difference and which one is ahead; with the fuel cost of each, the
  saving and the payback years when the question asks about fuel cost or savings;
- **fuel cost** (the question names one vehicle with an EPA mpg figure and asks what it
  costs in fuel): gallons and dollars a year at the mileage and gas price the question
  gives, else the ``[assumptions]`` of buying.toml.

Every figure is computed and formatted by the functions the dataset generator's answers use
(``carexpert.dataset.units``; the comparisons' rounding of ``gen_comparisons._single``, the
fuel figures of ``gen_buying.fuel_answer`` and ``savings_answer``), so the figure in the
passage is character for character the figure in the reference answer. ``Passage.sources``
names the vehicles a passage was computed from, so training contexts can keep a derived
passage out wherever one of its vehicles must stay out. The retriever
(``carexpert.retrieval.Retriever``) places these passages right after the named vehicles'.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from carexpert.dataset import units
from carexpert.dataset.gen_comparisons import short_name
from carexpert.knowledge.types import Passage, Vehicle

DERIVED = "derived"
COMPARE_PREFIX = "derived:compare:"
FUEL_PREFIX = "derived:fuel:"

# A question about what a car costs in fuel, what one saves over another, or how long it takes to pay back.
FUEL_COST = re.compile(r"\bfuel costs?\b|\bgas (?:bill|costs?|money)\b|\bspend on (?:gas|fuel)\b|\bin (?:fuel|gas)\b"
                       r"|\bsave on (?:gas|fuel)\b|\b(?:fuel|gas) savings?\b|\bpay (?:for )?itself\b|\bpay ?back\b"
                       r"|\bbreak even\b", re.IGNORECASE)
_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
_MILES = re.compile(_NUMBER + r"\s*(k|thousand)?\s*(?:miles|mi)\b\s*(?:a|per|each|every|/)\s*(?:year|yr)\b"
                    r"|" + _NUMBER + r"\s*(k|thousand)?\s*(?:miles|mi)\s+(?:annually|yearly)\b", re.IGNORECASE)
_PRICE = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)\s*(?:a|per|each|/)\s*(?:gallon|gal)\b"
                    r"|\b(?:gas|fuel)\s+(?:is|at|costs?|of|prices? of|price is)\s+\$\s?(\d+(?:\.\d{1,2})?)",
                    re.IGNORECASE)
MILES_RANGE = (100, 200_000)   # a yearly mileage outside this is not one
PRICE_RANGE = (0.5, 20.0)      # dollars per U.S. gallon


@dataclass(frozen=True)
class FuelAssumptions:
    """Yearly miles and the price of a gallon: the question's, else buying.toml's ``[assumptions]``."""

    miles: int
    price: float

    def text(self) -> str:
        return f"{units.fmt_int(self.miles)} miles a year and ${units.fmt_price(self.price)} per gallon"


def asks_fuel_cost(question: str) -> bool:
    return bool(FUEL_COST.search(question))


def fuel_assumptions(question: str, assumptions: Mapping[str, object]) -> FuelAssumptions:
    """The mileage and gas price the question states ("15,000 miles a year", "$3.00 a gallon"), else the defaults."""
    miles = int(float(str(assumptions["annual_miles"])))
    price = float(str(assumptions["gas_price_usd"]))
    found = _MILES.search(question)
    if found:
        number, scale = (found.group(1), found.group(2)) if found.group(1) else (found.group(3), found.group(4))
        value = float(number.replace(",", "")) * (1000 if scale else 1)
        if MILES_RANGE[0] <= value <= MILES_RANGE[1]:
            miles = int(value)
    found = _PRICE.search(question)
    if found:
        value = float(found.group(1) or found.group(2))
        if PRICE_RANGE[0] <= value <= PRICE_RANGE[1]:
            price = value
    return FuelAssumptions(miles, price)


def derived_passages(question: str, named: Sequence[Vehicle], assumptions: Mapping[str, object]) -> list[Passage]:
    """The passages to compute for ``question``, given the store vehicles it names (one per mention, in the
    question's order): a comparison of the first two, or the fuel cost of a lone one; [] when nothing asked
    needs arithmetic ("What is the hp of the Camry?")."""
    fuel = asks_fuel_cost(question)
    if len(named) >= 2:
        return [comparison_passage(named[0], named[1], fuel_assumptions(question, assumptions) if fuel else None)]
    if len(named) == 1 and fuel:
        passage = fuel_passage(named[0], fuel_assumptions(question, assumptions))
        return [passage] if passage is not None else []
    return []


def fuel_passage(vehicle: Vehicle, fuel: FuelAssumptions) -> Passage | None:
    """'Fuel cost of the 2023 Porsche 911 Carrera: at 15,000 miles a year and $3.00 per gallon, EPA 20 mpg
    combined means about 750 gallons, roughly $2,250 a year.' None for an electric car or one without an
    EPA figure."""
    mpg = vehicle.mpg_combined
    if vehicle.is_electric or not mpg:
        return None
    gallons = units.annual_gallons(fuel.miles, mpg)
    cost = units.annual_fuel_cost(fuel.miles, mpg, fuel.price)
    title = f"Fuel cost of the {vehicle.name}"
    text = (f"{title}: at {fuel.text()}, EPA {mpg} mpg combined means about {units.fmt_int(gallons)} gallons, "
            f"roughly {units.fmt_usd(cost)} a year.")
    return Passage(f"{FUEL_PREFIX}{vehicle.id}", DERIVED, title, text, (vehicle.id,))


@dataclass(frozen=True)
class _Figure:
    label: str                          # how the passage names the figure
    get: Callable[[Vehicle], float | None]
    show: Callable[[float], str]        # a value with its unit
    ahead: str                          # what the better one is ("is more powerful")
    higher_wins: bool
    label_unless_both_electric: str | None = None  # a plug-in hybrid's range is its electric range
    also: Callable[[float, float], str] | None = None  # the better and the other value in a second unit

    def label_for(self, a: Vehicle, b: Vehicle) -> str:
        if self.label_unless_both_electric and not (a.is_electric and b.is_electric):
            return self.label_unless_both_electric
        return self.label


def _seconds(value: float) -> str:
    return f"{units.fmt_decimal(value)} seconds"


def _litres_per_100km(better_mpg: float, other_mpg: float) -> str:
    return (f"{units.fmt_decimal(units.mpg_to_l100km(better_mpg))} versus "
            f"{units.fmt_decimal(units.mpg_to_l100km(other_mpg))} L/100 km")


# In the order the generator's comparisons state them; rounding and formatting as ``gen_comparisons._single``.
_FIGURES = (
    _Figure("Power", lambda v: v.hp, lambda x: f"{x} hp", "is more powerful", True),
    _Figure("Torque", lambda v: v.torque_lb_ft, lambda x: f"{x} lb-ft", "has more torque", True),
    _Figure("0-60 mph", lambda v: v.zero_to_sixty_s, _seconds, "is quicker", False),
    _Figure("Fuel economy", lambda v: None if v.is_electric else v.mpg_combined, lambda x: f"{x} mpg",
            "is more fuel-efficient", True, also=_litres_per_100km),
    _Figure("Range", lambda v: v.ev_range_mi, lambda x: f"{x} miles", "has more range", True,
            label_unless_both_electric="Electric range"),
    _Figure("Curb weight", lambda v: v.curb_weight_lb, lambda x: f"{units.fmt_int(x)} lb", "is lighter", False),
    _Figure("Base MSRP", lambda v: v.msrp_usd, units.fmt_usd, "is cheaper", False),
)


def comparison_passage(a: Vehicle, b: Vehicle, fuel: FuelAssumptions | None = None) -> Passage:
    """Both values, the difference and the one ahead, for every figure both rows have; with ``fuel``, the
    yearly fuel cost of each, the saving and the payback years."""
    sa, sb = short_name(a, b), short_name(b, a)
    if sa == sb:  # the same model and trim of two years: only the full names tell them apart
        sa, sb = a.name, b.name
    title = f"{a.name} vs {b.name}"
    parts = [f"{title}."]
    for figure in _FIGURES:
        x, y = figure.get(a), figure.get(b)
        if not x or not y:
            continue
        parts.append(_figure_sentence(figure, figure.label_for(a, b), x, y, sa, sb))
    if fuel is not None:
        parts += _fuel_sentences(a, b, sa, sb, fuel)
    return Passage(f"{COMPARE_PREFIX}{a.id}:{b.id}", DERIVED, title, " ".join(parts), (a.id, b.id))


def _figure_sentence(figure: _Figure, label: str, x: float, y: float, sa: str, sb: str) -> str:
    if x == y:
        return f"{label}: {figure.show(x)} for both."
    (win, wv, lv) = (sa, x, y) if (x > y) == figure.higher_wins else (sb, y, x)
    diff = abs(x - y)  # as the generator's answers compute it (a 0-60 difference rounds half up to a tenth)
    text = f"{label}: the {win} {figure.ahead}, {figure.show(wv)} versus {figure.show(lv)}"
    if figure.also is not None:
        text += f" ({figure.also(wv, lv)})"
    return f"{text}, a difference of {figure.show(diff)}."


def _fuel_sentences(a: Vehicle, b: Vehicle, sa: str, sb: str, fuel: FuelAssumptions) -> list[str]:
    """Yearly fuel cost of each, the saving, and how long the saving takes to pay back a higher price
    (as ``gen_buying.savings_answer`` computes them)."""
    if a.is_electric or b.is_electric or not a.mpg_combined or not b.mpg_combined:
        return []
    cost_a = units.annual_fuel_cost(fuel.miles, a.mpg_combined, fuel.price)
    cost_b = units.annual_fuel_cost(fuel.miles, b.mpg_combined, fuel.price)
    lead = f"Fuel cost at {fuel.text()}:"
    if cost_a == cost_b:
        return [f"{lead} {units.fmt_usd(cost_a)} a year for both."]
    (thrifty, thrifty_cost, thirsty, thirsty_cost, t_row, o_row) = \
        (sa, cost_a, sb, cost_b, a, b) if cost_a < cost_b else (sb, cost_b, sa, cost_a, b, a)
    savings = thirsty_cost - thrifty_cost
    sentences = [f"{lead} {units.fmt_usd(thrifty_cost)} for the {thrifty} versus {units.fmt_usd(thirsty_cost)} "
                 f"for the {thirsty}, a saving of {units.fmt_usd(savings)} a year with the {thrifty}."]
    if t_row.msrp_usd and o_row.msrp_usd:
        premium = t_row.msrp_usd - o_row.msrp_usd
        if premium > 0:
            years = units.payback_years(premium, savings)
            sentences.append(f"The {thrifty}'s base price is {units.fmt_usd(premium)} higher, so it takes about "
                             f"{units.fmt_decimal(years)} years of fuel savings to break even.")
        else:
            sentences.append(f"The {thrifty} does not cost more to start, so there is no price premium to pay back.")
    return sentences
