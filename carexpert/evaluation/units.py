"""Numbers with units in free text, and conversion between units of one family.

An answer may state a car's power as "203 hp", "203-horsepower" or "151 kW"; all
three are the same fact. ``extract_quantities`` finds every number in a text with
the unit written after it (or a "$" before it), and ``Quantity.value_in`` converts
it into any unit of the same *family* (power, torque, speed, ...), so a metric can
compare an answer with a reference whatever units either uses.

Numbers are read as people write them: "1,234", "6.5", "28.4k", "$1.2 million",
ranges "180-210 hp" / "6 to 7 seconds" (kept as one quantity with a low and a high
end). A number with no recognised unit is kept with ``unit=None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# unit -> (family, to_canonical, from_canonical). Canonical units: hp, lb-ft, mph, mpg,
# mpge, mi, s, lb, usd, kwh, l.
_Conv = tuple[str, Callable[[float], float], Callable[[float], float]]


def _linear(family: str, factor: float) -> _Conv:
    return (family, lambda v, f=factor: v * f, lambda v, f=factor: v / f)


def _reciprocal(family: str, constant: float) -> _Conv:
    """For L/100 km <-> mpg: value_in_canonical = constant / value."""
    return (family, lambda v, c=constant: c / v if v else float("inf"),
            lambda v, c=constant: c / v if v else float("inf"))


UNITS: dict[str, _Conv] = {
    "hp": _linear("power", 1.0),
    "kw": _linear("power", 1.341022),
    "ps": _linear("power", 0.986320),
    "lb-ft": _linear("torque", 1.0),
    "nm": _linear("torque", 0.737562),
    "mph": _linear("speed", 1.0),
    "km/h": _linear("speed", 0.621371),
    "mpg": _linear("economy", 1.0),
    "l/100km": _reciprocal("economy", 235.214583),
    "km/l": _linear("economy", 2.352146),
    "mpge": _linear("ev_economy", 1.0),
    "mi": _linear("distance", 1.0),
    "km": _linear("distance", 0.621371),
    "s": _linear("time", 1.0),
    "min": _linear("time", 60.0),
    "h": _linear("time", 3600.0),
    "lb": _linear("mass", 1.0),
    "kg": _linear("mass", 2.204623),
    "usd": _linear("money", 1.0),
    "kwh": _linear("energy", 1.0),
    "l": _linear("volume", 1.0),
    "cc": _linear("volume", 0.001),
    "gal": _linear("volume", 3.785412),
}

# Spellings of each unit as written after a number (matched case-insensitively, longest first).
_ALIASES: dict[str, tuple[str, ...]] = {
    "hp": ("hp", "bhp", "whp", "horsepower", "horse-power", "horse power", "horses"),
    "kw": ("kw", "kilowatts", "kilowatt"),
    "ps": ("ps", "metric horsepower"),
    "lb-ft": ("lb-ft", "lb ft", "lb.-ft.", "lb.-ft", "lb.ft", "lbft", "lb·ft", "lbs-ft", "lb-feet",
              "pound-feet", "pound feet", "pounds-feet", "pounds-foot", "pound-foot", "pounds feet",
              "ft-lb", "ft-lbs", "ft lb", "ft-lb.", "foot-pounds", "foot pounds"),
    "nm": ("nm", "n·m", "n-m", "n m", "n.m", "newton-meters", "newton meters", "newton-metres",
           "newton metres"),
    "mph": ("mph", "miles per hour", "miles an hour"),
    "km/h": ("km/h", "kph", "km/hr", "kmh", "kilometers per hour", "kilometres per hour"),
    "mpg": ("mpg", "miles per gallon", "miles to the gallon", "mpg combined", "mpg highway", "mpg city"),
    "l/100km": ("l/100km", "l/100 km", "l per 100 km", "liters per 100 km", "litres per 100 km",
                "liters per 100 kilometers", "litres per 100 kilometres", "liters/100km"),
    "km/l": ("km/l", "kilometers per liter", "kilometres per litre"),
    "mpge": ("mpge", "mpg-e", "miles per gallon equivalent"),
    "mi": ("miles", "mile", "mi"),
    "km": ("km", "kilometers", "kilometres", "kilometer", "kilometre"),
    "s": ("seconds", "second", "secs", "sec", "s"),
    "min": ("minutes", "minute", "mins", "min"),
    "h": ("hours", "hour", "hrs", "hr"),
    "lb": ("lbs", "lb", "pounds", "pound"),
    "kg": ("kg", "kgs", "kilograms", "kilogram", "kilos"),
    "usd": ("dollars", "dollar", "usd", "bucks"),
    "kwh": ("kwh", "kilowatt-hours", "kilowatt hours", "kilowatt-hour", "kilowatt hour"),
    "l": ("liters", "litres", "liter", "litre", "l"),
    "cc": ("cc", "cubic centimeters", "cubic centimetres"),
    "gal": ("gallons", "gallon", "gal"),
}

FAMILIES = sorted({family for family, _, _ in UNITS.values()})

_ALIAS_TO_UNIT = {alias: unit for unit, aliases in _ALIASES.items() for alias in aliases}
_UNIT_PATTERN = "|".join(re.escape(a) for a in sorted(_ALIAS_TO_UNIT, key=len, reverse=True))
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_SCALE = r"(?:\s*(?:k\b|K\b|thousand\b|million\b|mil\b|m\b(?=\s*(?:dollars|usd)))|(?<=\d)[kK]\b)?"
_QUANTITY = re.compile(
    rf"(?P<dollar>\$\s?)?(?P<low>{_NUMBER})(?P<lowscale>{_SCALE})"
    rf"(?:\s*(?:-|–|—|to)\s*\$?\s?(?P<high>{_NUMBER})(?P<highscale>{_SCALE}))?"
    rf"(?:\s*-?\s*(?P<unit>{_UNIT_PATTERN})(?![\w/]))?",
    re.IGNORECASE,
)
_SCALES = {"k": 1e3, "thousand": 1e3, "million": 1e6, "mil": 1e6, "m": 1e6}


@dataclass(frozen=True)
class Quantity:
    """A number (or a low-high range) found in a text, with its unit if one was written."""

    low: float
    high: float
    unit: str | None
    start: int
    end: int
    text: str

    @property
    def family(self) -> str | None:
        return UNITS[self.unit][0] if self.unit else None

    @property
    def is_range(self) -> bool:
        return self.low != self.high

    def value_in(self, unit: str) -> tuple[float, float]:
        """(low, high) converted into ``unit`` (same family); a unitless number is returned as is."""
        if self.unit is None or self.unit == unit:
            return self.low, self.high
        return tuple(sorted(convert(v, self.unit, unit) for v in (self.low, self.high)))  # type: ignore[return-value]


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert ``value`` between two units of one family; ValueError across families."""
    family_from, to_canonical, _ = UNITS[from_unit]
    family_to, _, from_canonical = UNITS[to_unit]
    if family_from != family_to:
        raise ValueError(f"cannot convert {from_unit} ({family_from}) to {to_unit} ({family_to})")
    return from_canonical(to_canonical(value))


def unit_family(unit: str) -> str:
    return UNITS[unit][0]


def _number(text: str, scale: str) -> float:
    value = float(text.replace(",", ""))
    word = scale.strip().lower()
    return value * _SCALES.get(word, 1.0)


_BETWEEN = re.compile(rf"\bbetween\s+(\$?\s?(?:{_NUMBER}))(?:\s*-?\s*(?:{_UNIT_PATTERN})(?![\w/]))?\s+and\s+",
                      re.IGNORECASE)


def extract_quantities(text: str) -> list[Quantity]:
    """Every number in ``text`` in order, with its unit (a leading "$" means US dollars).

    "between 150 and 250 hp" is read as the range "150 to 250 hp" (positions refer to that reading).
    """
    text = _BETWEEN.sub(lambda m: f"{m.group(1)} to ", text)
    found: list[Quantity] = []
    for match in _QUANTITY.finditer(text):
        low_text = match.group("low")
        if _is_part_of_word(text, match.start("low")):
            continue
        unit = _ALIAS_TO_UNIT.get((match.group("unit") or "").lower())
        if match.group("dollar"):
            unit = "usd"
        low = _number(low_text, match.group("lowscale") or "")
        high = low
        if match.group("high") is not None:
            high_scale = match.group("highscale") or ""
            high = _number(match.group("high"), high_scale)
            if not (match.group("lowscale") or "").strip() and high_scale.strip():
                low = _number(low_text, high_scale)  # "$25-30k": the scale applies to both ends
            if high < low:  # "0-60" is a range; "60-0" (braking) is two numbers in a phrase
                low, high = high, low
        found.append(Quantity(low, high, unit, match.start(), match.end(), match.group(0).strip()))
    return _share_units(text, found)


_LIST_JOINER = re.compile(r"\s*(?:,|,?\s*(?:and|or))\s*$", re.IGNORECASE)


def _share_units(text: str, found: list[Quantity]) -> list[Quantity]:
    """In "28 and 39 mpg" or "203, 205 or 210 hp" the unit written last belongs to every number."""
    shared = list(found)
    for index in range(len(shared) - 2, -1, -1):
        current, following = shared[index], shared[index + 1]
        if current.unit is None and following.unit is not None \
                and _LIST_JOINER.fullmatch(text[current.end:following.start]):
            shared[index] = Quantity(current.low, current.high, following.unit, current.start, current.end,
                                     current.text)
    return shared


def _is_part_of_word(text: str, index: int) -> bool:
    """A digit glued to letters before it ("A4", "X5", "RAV4", "F-150") is a model name, not a number."""
    if index == 0:
        return False
    before = text[index - 1]
    if before.isalpha():
        return True
    return before == "-" and index >= 2 and text[index - 2].isalpha()


# Reference keys (as the dataset writes them) -> the unit the number is in.
_KEY_UNITS = {
    "hp": "hp", "horsepower": "hp", "power": "hp", "torque": "lb-ft", "msrp": "usd", "price": "usd",
    "base_price": "usd", "mpg": "mpg", "mpge": "mpge", "weight": "lb", "curb_weight": "lb",
    "zero_to_sixty": "s", "range": "mi", "top_speed": "mph", "battery": "kwh", "displacement": "l",
}
_KEY_SUFFIXES = (
    ("_lb_ft", "lb-ft"), ("_lbft", "lb-ft"), ("_nm", "nm"), ("_hp", "hp"), ("_kwh", "kwh"), ("_kw", "kw"),
    ("_mph", "mph"), ("_kmh", "km/h"), ("_kph", "km/h"), ("_mpge", "mpge"), ("_mpg", "mpg"),
    ("_l_100km", "l/100km"), ("_l100km", "l/100km"), ("_miles", "mi"), ("_mi", "mi"), ("_km", "km"),
    ("_seconds", "s"), ("_sec", "s"), ("_s", "s"), ("_minutes", "min"), ("_min", "min"),
    ("_hours", "h"), ("_h", "h"), ("_lbs", "lb"), ("_lb", "lb"), ("_kg", "kg"), ("_usd", "usd"),
    ("_price", "usd"), ("_msrp", "usd"), ("_liters", "l"), ("_l", "l"), ("_cc", "cc"), ("_gal", "gal"),
    ("_gallons", "gal"),
)
_KEY_PREFIXES = (("mpg_", "mpg"), ("mpge_", "mpge"), ("hp_", "hp"), ("msrp_", "usd"), ("price_", "usd"))


def unit_for_key(key: str) -> str | None:
    """The unit a reference number is in, from its key ("torque_nm" -> "nm"); None when unknown."""
    name = key.lower().strip().split("#")[0]  # "hp#2": the third number of a free-text reference
    if name in _KEY_UNITS:
        return _KEY_UNITS[name]
    if name in UNITS:
        return name
    for suffix, unit in _KEY_SUFFIXES:
        if name.endswith(suffix):
            return unit
    for prefix, unit in _KEY_PREFIXES:
        if name.startswith(prefix):
            return unit
    return None
