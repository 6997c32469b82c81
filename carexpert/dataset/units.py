"""Unit conversions and number formatting, in one place so answers and tests agree.

Rounding is half-up (not Python's banker's rounding) because that is how people and spec
sheets round: 352.5 N·m is written 353.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

HP_TO_KW = 0.745699872
LB_FT_TO_NM = 1.3558179483
MI_TO_KM = 1.609344
LB_TO_KG = 0.45359237
MPG_L100KM = 235.214583  # L/100 km = 235.214583 / mpg (U.S. gallons)


def round_half_up(value: float, digits: int = 0) -> float:
    """Round like a spec sheet: 0.5 always goes up."""
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def hp_to_kw(hp: float) -> int:
    return int(round_half_up(hp * HP_TO_KW))


def miles_to_km(miles: float) -> int:
    return int(round_half_up(miles * MI_TO_KM))


def miles_to_km_rounded(miles: float, step: int = 100) -> int:
    """Kilometers rounded to a friendly step (service intervals are never exact)."""
    return int(round_half_up(miles * MI_TO_KM / step) * step)


def lb_to_kg(lb: float) -> int:
    return int(round_half_up(lb * LB_TO_KG))


def mpg_to_l100km(mpg: float) -> float:
    return round_half_up(MPG_L100KM / mpg, 1)


def annual_gallons(miles_per_year: float, mpg: float) -> int:
    """Gallons a year at an EPA combined rating, rounded to the gallon."""
    return int(round_half_up(miles_per_year / mpg))


def annual_fuel_cost(miles_per_year: float, mpg: float, price_per_gallon: float) -> int:
    """Dollars a year: gallons used times the price, rounded to the dollar."""
    return int(round_half_up(miles_per_year / mpg * price_per_gallon))


def payback_years(price_premium: float, yearly_savings: float) -> float:
    """Years of fuel savings that pay back a higher purchase price, to one decimal."""
    return round_half_up(price_premium / yearly_savings, 1)


def fmt_int(value: float) -> str:
    """3310 -> '3,310'."""
    return f"{int(value):,}"


def fmt_usd(value: float) -> str:
    """26420 -> '$26,420'."""
    return f"${int(value):,}"


def fmt_price(value: float) -> str:
    """A fuel price: 3.5 -> '3.50'."""
    return f"{value:.2f}"


def fmt_decimal(value: float, digits: int = 1) -> str:
    return f"{round_half_up(value, digits):.{digits}f}"
