"""Themes are data: every ``themes/*.toml`` becomes a Textual ``Theme``.

A theme file holds the Textual colour fields (``primary`` is the only one required)
and a ``[variables]`` table for the app's own colours (chart lines, VRAM bars,
verdicts). Each file is checked on its own: a broken one is reported by name and
skipped, so one typo never stops the app from starting. ``BRAND_THEME`` is built in,
so the app always has its default even without the folder.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

BRAND_THEME_NAME = "carexpert-dark"

COLOR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent",
                "foreground", "background", "surface", "panel", "boost")
NUMBER_FIELDS = ("luminosity_spread", "text_alpha")

# The app's own theme variables and which Theme colour stands in when a file leaves one out.
APP_VARIABLES = {
    "loss-train": "primary",
    "loss-eval": "accent",
    "lr-line": "secondary",
    "vram-used": "success",
    "verdict-good": "success",
    "verdict-bad": "error",
    "side-base-closed": "secondary",
    "side-base-rag": "accent",
    "side-tuned-closed": "primary",
    "side-tuned-rag": "success",
}

BRAND_THEME = Theme(
    name=BRAND_THEME_NAME, dark=True,
    primary="#2F9FD8", secondary="#5C6F89", accent="#F2A93B", warning="#F2A93B",
    error="#E0566B", success="#4FBF7A", foreground="#DDE3EA", background="#12161C",
    surface="#1A2029", panel="#232B36",
    variables={"loss-train": "#2F9FD8", "loss-eval": "#F2A93B", "lr-line": "#B48EF0",
               "vram-used": "#4FBF7A", "verdict-good": "#4FBF7A", "verdict-bad": "#E0566B"},
)


@dataclass(frozen=True)
class ThemeProblem:
    """A theme file that could not be used, and why."""

    path: Path
    message: str

    def render(self) -> str:
        return f"{self.path.name}: {self.message}"


def themes_dir() -> Path:
    """``$CAREXPERT_THEMES`` if set, else ``themes/`` at the repository root."""
    override = os.environ.get("CAREXPERT_THEMES")
    return Path(override) if override else Path(__file__).resolve().parents[1] / "themes"


def theme_from_data(data: dict, source: Path) -> Theme:
    """Build a Theme from one parsed file; ValueError says what is wrong."""
    name = data.get("name", source.stem)
    if not isinstance(name, str) or not name.strip():
        raise ValueError("'name' must be a non-empty string")
    if "primary" not in data:
        raise ValueError("'primary' is required")
    known = {"name", "dark", "variables", *COLOR_FIELDS, *NUMBER_FIELDS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}")
    colors = {}
    for key in COLOR_FIELDS:
        if key in data:
            colors[key] = _checked_color(key, data[key])
    numbers = {}
    for key in NUMBER_FIELDS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{key!r} must be a number from 0 to 1")
            numbers[key] = float(value)
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ValueError("'dark' must be true or false")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ValueError("[variables] must be a table")
    checked_vars = {key: _checked_color(f"variables.{key}", value) for key, value in variables.items()}
    for variable, fallback in APP_VARIABLES.items():
        checked_vars.setdefault(variable, colors.get(fallback, colors["primary"]))
    return Theme(name=name.strip(), dark=dark, variables=checked_vars, **colors, **numbers)


def _checked_color(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a colour string")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{key!r}: {value!r} is not a colour") from None
    return value


def load_themes(folder: Path | None = None) -> tuple[list[Theme], list[ThemeProblem]]:
    """Every valid theme in ``folder`` (sorted by file name) and the problems with the rest."""
    folder = folder or themes_dir()
    themes: list[Theme] = []
    problems: list[ThemeProblem] = []
    if not folder.is_dir():
        return themes, problems
    for path in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            themes.append(theme_from_data(data, path))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(ThemeProblem(path, f"cannot read ({exc})"))
        except tomllib.TOMLDecodeError as exc:
            problems.append(ThemeProblem(path, f"malformed TOML: {exc}"))
        except ValueError as exc:
            problems.append(ThemeProblem(path, str(exc)))
    return themes, problems
