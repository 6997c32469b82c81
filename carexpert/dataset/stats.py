"""Dataset statistics: category mix and token lengths (p50 / p95 / max).

Without a tokenizer, lengths are an estimate of about four characters per token, and
every result says which it is, so nobody mistakes an estimate for a measurement.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carexpert.dataset.tokenization import prompt_for, token_length

CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class LengthStats:
    count: int
    p50: int
    p95: int
    max: int
    mean: float
    over_max: int
    max_length: int | None
    exact: bool  # False: estimated from characters

    @property
    def method(self) -> str:
        return "tokenizer" if self.exact else f"estimate (~{CHARS_PER_TOKEN:g} characters per token, no tokenizer given)"

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "max": self.max, "mean": round(self.mean, 1),
                "over_max_length": self.over_max, "max_length": self.max_length, "method": self.method}


def percentile(values: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile (an actual observed length, never interpolated)."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def estimated_length(record: Mapping[str, Any]) -> int:
    return math.ceil(len(prompt_for(record) + str(record["output"])) / CHARS_PER_TOKEN) + 1


def record_lengths(records: Iterable[Mapping[str, Any]], tokenizer: Any = None) -> list[int]:
    if tokenizer is None:
        return [estimated_length(r) for r in records]
    return [token_length(tokenizer, r) for r in records]


def length_stats(lengths: Sequence[int], max_length: int | None = None, *, exact: bool = True) -> LengthStats:
    over = sum(1 for n in lengths if max_length is not None and n > max_length)
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    return LengthStats(len(lengths), percentile(lengths, 50), percentile(lengths, 95), max(lengths, default=0),
                       mean, over, max_length, exact)


def token_length_stats(records: Iterable[Mapping[str, Any]], tokenizer: Any = None,
                       max_length: int | None = None) -> LengthStats:
    return length_stats(record_lengths(records, tokenizer), max_length, exact=tokenizer is not None)


def category_mix(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, float]]:
    """category -> (count, share), largest first."""
    counts = Counter(str(r.get("category") or "user") for r in records)
    total = sum(counts.values()) or 1
    return {cat: (n, n / total) for cat, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
