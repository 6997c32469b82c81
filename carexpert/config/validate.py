"""Turn parsed TOML into a ``Config``, collecting every problem at once.

Each problem names the file, the key (with its line when it can be found) and what
is allowed, with a "did you mean" for unknown keys. Nothing here raises on bad
input except ``ConfigError`` at the end, which lists them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

from carexpert.config.schema import SECTIONS, Config, FieldSpec, field_specs
from carexpert.errors import UserError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where it is and what is allowed."""

    key: str
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(UserError):
    """A config with one or more problems; ``problems`` lists them all."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        count = len(problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in the configuration",
            where=source,
            details=[p.render(source) for p in problems],
            fix="edit the file and run 'carexpert config validate' again "
                "('carexpert config explain KEY' says what each key means)")


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def key_line(text: str | None, section: str, name: str | None = None) -> int | None:
    """Best-effort line number of ``[section]`` or of ``name`` inside it in TOML ``text``."""
    if not text:
        return None
    current = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.\-]+)\s*\]", line)
        if header:
            current = header.group(1)
            if name is None and current == section:
                return number
            continue
        if name is not None and current == section and re.match(rf"^{re.escape(name)}\s*=", line):
            return number
        dotted = re.match(rf"^{re.escape(section)}\.{re.escape(name or '')}\s*=", line) if name else None
        if dotted and current is None:
            return number
    return None


def coerce(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    """Check one value against its spec; returns (value, None) or (None, message)."""
    got = f"got {value!r}"
    if spec.type is bool:
        if not isinstance(value, bool):
            return None, f"expected true or false, {got}"
    elif spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected {spec.allowed()}, {got}"
    elif spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"expected {spec.allowed()}, {got}"
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            return None, f"expected {spec.allowed()}, {got}"
    elif spec.type is str:
        if not isinstance(value, str):
            return None, f"expected {spec.allowed()}, {got}"
    elif spec.type is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f"expected a list of strings, {got}"
    elif spec.type is dict and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
        return None, f"expected a table of strings, {got}"
    if spec.choices and value not in spec.choices:
        return None, f"expected {spec.allowed()}, {got}{_did_you_mean(str(value), [str(c) for c in spec.choices])}"
    if spec.min is not None and isinstance(value, (int, float)) and value < spec.min:
        return None, f"expected {spec.allowed()}, {got}"
    if spec.max is not None and isinstance(value, (int, float)) and value > spec.max:
        return None, f"expected {spec.allowed()}, {got}"
    if spec.nonempty and isinstance(value, (str, list)) and not (value.strip() if isinstance(value, str) else value):
        return None, f"must not be empty ({spec.allowed()})"
    return value, None


def build_config(data: Any, text: str | None = None) -> tuple[Config, list[Problem]]:
    """Validate parsed TOML ``data`` into a Config; bad values keep their defaults and are reported."""
    problems: list[Problem] = []
    config = Config()
    if not isinstance(data, dict):
        return config, [Problem("", "the top level must be a table of sections")]
    specs = {spec.key: spec for spec in field_specs()}
    for section, body in data.items():
        if section not in SECTIONS:
            problems.append(Problem(f"[{section}]", "unknown section" + _did_you_mean(section, list(SECTIONS))
                                    + f"; sections are {', '.join(SECTIONS)}", key_line(text, section)))
            continue
        if not isinstance(body, dict):
            problems.append(Problem(f"[{section}]", f"expected a table, got {body!r}", key_line(text, section)))
            continue
        target = getattr(config, section)
        names = [f.name for f in dataclasses.fields(target)]
        for name, value in body.items():
            key = f"{section}.{name}"
            if key not in specs:
                problems.append(Problem(key, "unknown key" + _did_you_mean(name, names),
                                        key_line(text, section, name)))
                continue
            checked, message = coerce(specs[key], value)
            if message:
                problems.append(Problem(key, message, key_line(text, section, name)))
            else:
                setattr(target, name, checked)
    problems.extend(cross_field_problems(config, text))
    return config, problems


def cross_field_problems(config: Config, text: str | None = None) -> list[Problem]:
    """Combinations that are each valid alone but not together (no hardware probing here)."""
    problems = []
    if config.data.validation_fraction + config.data.test_fraction >= 0.9:
        problems.append(Problem("data.test_fraction", "validation_fraction + test_fraction leave under 10% "
                                "of the data for training; lower one of them", key_line(text, "data", "test_fraction")))
    if config.model.quantization in ("nf4", "fp4") and config.model.compute_dtype == "float16" \
            and config.train.precision == "bf16":
        problems.append(Problem("model.compute_dtype", "float16 compute with bf16 training mixes dtypes; "
                                "use compute_dtype = \"bfloat16\"", key_line(text, "model", "compute_dtype")))
    if config.train.precision == "fp16" and config.model.quantization == "none" \
            and config.model.compute_dtype == "bfloat16":
        problems.append(Problem("train.precision", "fp16 training with bfloat16 weights; use precision = "
                                "\"bf16\" or compute_dtype = \"float16\"", key_line(text, "train", "precision")))
    if config.train.eval_steps and config.train.eval_steps > 0 and config.data.validation_fraction == 0:
        problems.append(Problem("train.eval_steps", "validation every N steps needs validation data; set "
                                "data.validation_fraction above 0 or eval_steps = 0", key_line(text, "train", "eval_steps")))
    return problems
