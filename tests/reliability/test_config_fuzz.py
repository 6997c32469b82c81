"""Property-based fuzzing of config text and values: validation never raises anything but
ConfigError, every problem names a key (or the line of malformed TOML), and no traceback
reaches the user."""

from __future__ import annotations

import string
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carexpert.config import Config, ConfigError, field_specs, parse_config_text
from carexpert.config.validate import build_config

KEYS = [(spec.section, spec.name) for spec in field_specs()]

toml_scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=4),
    st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=6), st.text(max_size=6), max_size=3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises_unexpectedly(text):
    try:
        parse_config_text(text, "fuzz.toml")
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.key or "malformed TOML" in problem.message or "top level" in problem.message


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), toml_scalars, max_size=6))
def test_values_of_any_type_give_problems_that_name_their_key(assignments):
    data: dict = {}
    for (section, name), value in assignments.items():
        data.setdefault(section, {})[name] = value
    config, problems = build_config(data)
    assert isinstance(config, Config)
    named = {p.key for p in problems}
    for problem in problems:
        assert problem.key and problem.message
    # every value the validator accepted really is in the config, every refused one is named
    for (section, name), value in assignments.items():
        key = f"{section}.{name}"
        if key not in named and not any(p.key.startswith(section) for p in problems if "." not in p.key):
            stored = getattr(getattr(config, section), name)
            assert stored == value or (isinstance(value, int) and stored == float(value))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), st.dictionaries(st.text(min_size=1, max_size=10),
                                                                         toml_scalars, max_size=3), max_size=3))
def test_unknown_sections_and_keys_are_reported_not_raised(data):
    _, problems = build_config(data)
    for problem in problems:
        assert problem.key


def test_cli_shows_no_traceback_for_binary_junk(tmp_path):
    junk = tmp_path / "junk.toml"
    junk.write_bytes(bytes(range(256)) * 4)
    result = subprocess.run([sys.executable, "-m", "carexpert.cli.main", "config", "validate", "--no-probe",
                             "--config", str(junk)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "junk.toml" in result.stderr
