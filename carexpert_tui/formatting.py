"""Small, shared ways of writing numbers for people (bytes, durations, rates)."""

from __future__ import annotations

from typing import Any

from carexpert.errors import UserError

GIB = 1024**3


def gib(value: float | int | None, digits: int = 1) -> str:
    """Bytes as GiB ("12.3G"); "?" when unknown."""
    if value is None:
        return "?"
    return f"{value / GIB:.{digits}f}G"


def duration(seconds: float | int | None) -> str:
    """Seconds as "1h02m", "4m05s" or "12s"; "?" when unknown."""
    if seconds is None or seconds < 0:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def number(value: float | int | None, digits: int = 3) -> str:
    """A compact number ("0.0002", "1.23e-05", "812"); "–" when missing."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"


def percent(value: float | None) -> str:
    """A 0..1 share as "42%"; "–" when missing."""
    return "–" if value is None else f"{value * 100:.0f}%"


def stats_line(step: dict[str, Any]) -> str:
    max_steps = step.get("max_steps")
    parts = [f"step {step.get('step', 0)}" + (f"/{max_steps}" if max_steps else ""),
             f"epoch {number(step.get('epoch'), 2)}", f"ETA {duration(step.get('eta_s'))}"]
    if step.get("tokens_per_s") is not None:
        parts.append(f"{step['tokens_per_s']:,.0f} tok/s")
    parts.append(f"loss {number(step.get('loss'), 4)}")
    return " · ".join(parts)


def describe_error(error: BaseException | None) -> str:
    """A worker's failure for the user: a UserError's own message and fix, else the exception's type and text."""
    return error.render() if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
