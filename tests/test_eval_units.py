"""Numbers with units in free text, and unit conversion."""

from __future__ import annotations

import pytest

from carexpert.evaluation.units import convert, extract_quantities, unit_for_key


def found(text):
    return [(q.low, q.high, q.unit) for q in extract_quantities(text)]


@pytest.mark.parametrize("text, expected", [
    ("203 hp", [(203, 203, "hp")]),
    ("a 203-horsepower four", [(203, 203, "hp")]),
    ("151 kW", [(151, 151, "kw")]),
    ("184 lb-ft and 249 N·m", [(184, 184, "lb-ft"), (249, 249, "nm")]),
    ("184 pound-feet", [(184, 184, "lb-ft")]),
    ("It costs $28,400.", [(28400, 28400, "usd")]),
    ("about $28.4k", [(28400, 28400, "usd")]),
    ("$25-30k", [(25000, 30000, "usd")]),
    ("1.2 million dollars", [(1.2e6, 1.2e6, "usd")]),
    ("6.5 seconds", [(6.5, 6.5, "s")]),
    ("in 5.8s", [(5.8, 5.8, "s")]),
    ("0-60 mph", [(0, 60, "mph")]),
    ("40 mpg or 5.9 L/100 km", [(40, 40, "mpg"), (5.9, 5.9, "l/100km")]),
    ("300 miles (483 km) of range", [(300, 300, "mi"), (483, 483, "km")]),
    ("120 km/h", [(120, 120, "km/h")]),
    ("118 MPGe", [(118, 118, "mpge")]),
    ("3,500 lbs", [(3500, 3500, "lb")]),
    ("a 75 kWh battery", [(75, 75, "kwh")]),
    ("a 2.5-liter four", [(2.5, 2.5, "l")]),
    ("180 to 210 hp", [(180, 210, "hp")]),
])
def test_numbers_and_units_are_read_as_written(text, expected):
    assert found(text) == [tuple(map(float, e[:2])) + (e[2],) for e in expected]


def test_model_names_are_not_numbers():
    assert found("The RAV4, the F-150 and the X5") == []
    assert found("The 2024 Camry") == [(2024.0, 2024.0, None)]


@pytest.mark.parametrize("value, source, target, expected", [
    (151, "kw", "hp", 202.5),
    (249, "nm", "lb-ft", 183.65),
    (5.9, "l/100km", "mpg", 39.87),
    (483, "km", "mi", 300.12),
    (100, "km/h", "mph", 62.14),
    (1588, "kg", "lb", 3500.9),
    (2500, "cc", "l", 2.5),
])
def test_conversions(value, source, target, expected):
    assert convert(value, source, target) == pytest.approx(expected, rel=1e-3)


def test_conversion_across_families_is_refused():
    with pytest.raises(ValueError):
        convert(1, "hp", "mph")


@pytest.mark.parametrize("key, unit", [
    ("hp", "hp"), ("torque_lb_ft", "lb-ft"), ("torque_nm", "nm"), ("zero_to_sixty_s", "s"),
    ("mpg_combined", "mpg"), ("ev_range_mi", "mi"), ("range_miles", "mi"), ("msrp_usd", "usd"),
    ("msrp", "usd"), ("curb_weight_lb", "lb"), ("battery_kwh", "kwh"), ("cylinders", None),
])
def test_reference_keys_name_their_units(key, unit):
    assert unit_for_key(key) == unit


def test_between_and_is_a_range():
    assert found("between 150 and 250 hp") == [(150.0, 250.0, "hp")]
    assert found("between 150 hp and 250 hp") == [(150.0, 250.0, "hp")]
    assert found("between $25,000 and $30,000") == [(25000.0, 30000.0, "usd")]


def test_a_list_shares_its_last_unit():
    assert found("28 and 39 mpg") == [(28.0, 28.0, "mpg"), (39.0, 39.0, "mpg")]
    assert found("203, 205 or 210 hp") == [(203.0, 203.0, "hp"), (205.0, 205.0, "hp"), (210.0, 210.0, "hp")]
    assert found("the 2024 Camry makes 203 hp")[0][2] is None
