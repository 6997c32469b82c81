"""Key-concept coverage: which of an explanation's key terms does an answer mention?

Matching is on normalized words: lower case, hyphens and slashes as spaces, a light
suffix-stripping stemmer ("braking", "brakes" and "brake" all become "brak"), and a
small table of automotive synonyms and abbreviations ("turbo" for "turbocharger",
"AEB" for "automatic emergency braking"). A term written "a|b" is satisfied by either
spelling. A multi-word term must appear as consecutive words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Each group lists spellings of one idea; a key term matching any member matches all.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("turbocharger", "turbo", "turbocharged", "turbocharging"),
    ("supercharger", "blower", "supercharged", "supercharging"),
    ("electric vehicle", "ev", "battery electric", "bev", "electric car"),
    ("plug-in hybrid", "phev", "plug in hybrid"),
    ("hybrid", "hev", "hybrid electric"),
    ("horsepower", "hp", "power output"),
    ("torque", "lb-ft", "pound-feet", "twisting force"),
    ("fuel economy", "mpg", "miles per gallon", "fuel efficiency", "gas mileage"),
    ("all-wheel drive", "awd"),
    ("four-wheel drive", "4wd", "4x4"),
    ("front-wheel drive", "fwd"),
    ("rear-wheel drive", "rwd"),
    ("adaptive cruise control", "acc", "adaptive cruise"),
    ("automatic emergency braking", "aeb", "emergency braking", "autonomous emergency braking"),
    ("lane keeping assist", "lane keep assist", "lane keeping", "lane centering", "lane-keeping", "lka"),
    ("blind spot monitoring", "blind-spot monitoring", "blind spot", "bsm"),
    ("advanced driver assistance", "adas", "driver assistance", "driver-assistance"),
    ("continuously variable transmission", "cvt"),
    ("dual-clutch", "dct", "dual clutch"),
    ("regenerative braking", "regen", "regenerative"),
    ("kilowatt-hour", "kwh"),
    ("dc fast charging", "fast charging", "dcfc", "level 3", "dc fast charger", "rapid charging"),
    ("level 2", "240v", "240-volt", "240 volt"),
    ("internal combustion", "combustion engine", "gasoline engine", "gas engine"),
    ("exhaust", "exhaust gas", "exhaust gases"),
    ("crankshaft", "belt-driven", "belt driven", "engine-driven", "crank"),
    ("turbo lag", "lag"),
    ("oil change", "change the oil", "changing the oil", "oil and filter change"),
    ("owner's manual", "owners manual", "owner manual", "manufacturer's recommendation",
     "manufacturer recommendation", "maintenance schedule"),
    ("synthetic oil", "full synthetic", "synthetic"),
    ("reliability", "reliable", "dependable", "dependability"),
    ("total cost of ownership", "cost of ownership", "running costs", "ownership costs"),
    ("msrp", "sticker price", "list price", "manufacturer's suggested retail price"),
    ("tire", "tyre"),
    ("warranty", "guarantee"),
    ("certified pre-owned", "cpo", "certified used"),
    ("pre-purchase inspection", "inspection", "inspected"),
    ("vehicle history report", "history report", "carfax", "autocheck"),
    ("depreciation", "depreciate", "loses value", "lose value"),
    ("range", "driving range"),
    ("battery", "battery pack", "traction battery"),
)


def stem(word: str) -> str:
    """Strip one common English suffix, keeping at least three letters."""
    for suffix, replacement in (("ations", "at"), ("ation", "at"), ("ings", ""), ("ing", ""), ("ers", ""),
                                ("ies", ""), ("ied", ""), ("er", ""), ("ed", ""), ("es", ""), ("ly", ""),
                                ("s", ""), ("e", ""), ("y", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def normalize(text: str) -> list[str]:
    """Stemmed lower-case words, with hyphens, slashes and apostrophes folded away."""
    text = text.lower().replace("\u2019", "'").replace("'s", "").replace("'", "")
    text = re.sub(r"[-/_]", " ", text)
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)  # "CCS1" has the term "CCS"
    return [stem(w) for w in re.findall(r"[a-z0-9]+", text)]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    if not needle:
        return False
    size = len(needle)
    first = needle[0]
    return any(haystack[i] == first and list(haystack[i:i + size]) == list(needle)
               for i in range(len(haystack) - size + 1))


_GROUPS = [[normalize(s) for s in group] for group in SYNONYM_GROUPS]


def spellings(term: str) -> list[list[str]]:
    """Every normalized spelling that satisfies ``term`` ("a|b" alternatives plus synonyms)."""
    options = [normalize(part) for part in term.split("|") if part.strip()]
    expanded = list(options)
    for group in _GROUPS:
        if any(option in group for option in options):
            expanded.extend(g for g in group if g not in expanded)
    return [o for o in expanded if o]


def term_present(term: str, answer_words: Sequence[str]) -> bool:
    return any(_contains(answer_words, spelling) for spelling in spellings(term))


def concept_coverage(key_terms: Iterable[str], answer: str) -> tuple[float | None, list[str], list[str]]:
    """(share of key terms present, found, missing); share is None when there are no terms."""
    terms = [t for t in key_terms if t.strip()]
    if not terms:
        return None, [], []
    words = normalize(answer)
    found = [t for t in terms if term_present(t, words)]
    missing = [t for t in terms if t not in found]
    return round(len(found) / len(terms), 4), found, missing


_STOPWORDS = frozenset(normalize(
    "a an the and or but if of to in on at by for with from as is are was were be been it its this that "
    "these those you your yours they them their we our i me my he she his her not no so than then there "
    "here what which who whom how when where why can could should would will may might must do does did "
    "have has had about into over under more most less very also just only any some all each both such "
    "car cars vehicle vehicles"))


def content_words(text: str, exclude: str = "") -> set[str]:
    """The distinct content words of ``text`` (normalized, no stop words or bare numbers), less those of ``exclude``."""
    excluded = set(normalize(exclude))
    return {w for w in normalize(text) if w not in _STOPWORDS and not w.isdigit() and w not in excluded}


def content_recall(reference_text: str, answer: str, exclude: str = "") -> float:
    """Share of the reference answer's distinct content words that the answer uses (for cases that
    give only a free-text reference); words of ``exclude`` (the question) do not count."""
    wanted = content_words(reference_text, exclude)
    if not wanted:
        return 0.0
    present = set(normalize(answer))
    return round(len(wanted & present) / len(wanted), 4)
