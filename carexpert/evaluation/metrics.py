"""Scoring one answer, and summing scores up per category.

Each answer gets components that mean something for a car question (the rules are
spelled out in docs/evaluation.md):

- numeric accuracy (spec questions): the first value the answer states in the asked
  unit family, converted into the reference's unit, within ``tolerance`` (relative);
- concept coverage (explanations): share of the key terms present, after light
  stemming and a small automotive synonym table;
- refusal (made-up models): says it does not know / no such model, and invents no specs;

plus quality measures that do not change the score: clean stop (EOS before the token
limit), repetition rate (share of repeated word 3-grams), length and hallucinated figures
(``figures``). The item score is the mean of its components, in [0, 1], and the verdict
follows from it. An answer the retrieval guard gave (``guard=True``: the question named a
model the store does not know, so nothing was generated) is scored like any answer, but
leaves the measures of how the model writes (clean stop, repetition, length) to the answers
it generated, and the summary counts guard refusals apart from the model's own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.concepts import concept_coverage, content_recall, normalize, term_present
from carexpert.evaluation.figures import hallucinated_figures, hallucination_rate
from carexpert.evaluation.units import Quantity, convert, extract_quantities, unit_family, unit_for_key

CORRECT_AT = 0.75  # an item scoring at least this is "correct"; above 0 it is "partial"
HEDGED_CREDIT = 0.5  # the right number stated, but not as the answer's (first) claim
SPEC_FAMILIES = frozenset({"power", "torque", "speed", "economy", "ev_economy", "distance", "time",
                           "mass", "money", "energy", "volume"})

_REFUSAL_PATTERNS = [re.compile(p, re.IGNORECASE) for p in (
    r"\bi (?:do not|don't|dont|really don't) (?:know|have (?:any |reliable |verified )?"
    r"(?:information|data|details|specs|specifications|record|figures|numbers))",
    r"\bi(?:'m| am) not (?:aware|familiar|sure|certain)\b",
    r"\b(?:not|never) (?:aware|heard) of\b",
    r"\bno (?:such|known|record of|information (?:about|on)|data (?:about|on))\b",
    r"\b(?:isn't|is not|wasn't|was not|not) (?:a|an) (?:real|known|actual|production|existing)\b",
    r"\b(?:does|do|did)(?: not|n't) (?:exist|appear to exist|seem to exist)\b",
    r"\bthere(?:'s| is| was| has never been| have never been) no\b[^.!?]{0,60}"
    r"\b(?:model|car|vehicle|version|trim|i know of|i'm aware of|i am aware of)s?\b",
    r"\b(?:isn't|is not|wasn't|was not) (?:a|an) (?:\w+ )?(?:vehicle|car|model|carmaker|make)s? (?:that )?i "
    r"(?:know|recognize)",
    r"\bi (?:don't|do not) recognize\b",
    r"\b(?:never|was not|wasn't|has not been|hasn't been) (?:made|built|produced|sold|manufactured|offered)"
    r"\b[^.!?]{0,40}\b(?:model|car|vehicle|version|trim|such)\b",
    r"\b(?:can't|cannot|can not|couldn't|could not|unable to) (?:find|verify|confirm|locate|tell you|provide)\b",
    r"\b(?:fictional|fictitious|made[- ]up|nonexistent|non-existent)\b",
    r"\bhave no (?:information|record|data|knowledge|details)\b",
)]
REFUSAL_WINDOW = 240  # characters: a refusal is what an answer opens with, not a clause deep inside it


def is_refusal(answer: str) -> bool:
    """True when the answer opens by saying it does not know, or that the model does not exist."""
    lead = answer.replace("\u2019", "'").strip()[:REFUSAL_WINDOW]
    return any(p.search(lead) for p in _REFUSAL_PATTERNS)


def _within(value: float, reference: float, tolerance: float) -> bool:
    return abs(value - reference) <= tolerance * abs(reference) + 1e-9


def _claim_matches(claim: tuple[float, float], reference: float, tolerance: float) -> str | None:
    """'exact' when the claim is the reference, 'hedged' when a wide range spans it, else None."""
    low, high = claim
    if _within(low, reference, tolerance) and _within(high, reference, tolerance):
        return "exact"
    if low <= reference <= high:
        return "hedged"
    return None


def _is_year_like(quantity: Quantity) -> bool:
    return quantity.unit is None and not quantity.is_range and float(quantity.low).is_integer() \
        and 1900 <= quantity.low <= 2100


def _claims(quantities: Sequence[Quantity], unit: str, reference: float, tolerance: float,
            split_ranges: bool = False) -> tuple[list[tuple[float, float]], bool]:
    """The answer's distinct claims in ``unit``'s family, in order; bool = fell back to unitless numbers.

    With several facts of the family asked (an interval "5,000 to 10,000 miles"), a range's two ends
    are two claims; with one fact a range is one (hedging) claim.
    """
    family = unit_family(unit)
    in_family = []
    for q in quantities:
        if q.family == family:
            low, high = q.value_in(unit)
            in_family += [(low, low), (high, high)] if q.is_range and split_ranges else [(low, high)]
    unitless = not in_family
    if unitless:
        in_family = [q.value_in(unit) for q in quantities
                     if q.unit is None and not (q.is_range and q.low == 0)  # "0-60" names a sprint
                     and not (_is_year_like(q) and not 1900 <= reference <= 2100)]
    distinct: list[tuple[float, float]] = []
    for claim in in_family:  # "203 hp (151 kW)" states one value twice
        if not any(_within(claim[0], d[0], tolerance) and _within(claim[1], d[1], tolerance) for d in distinct):
            distinct.append(claim)
    return distinct, unitless


def _group_reference(reference: Mapping[str, float], tolerance: float) -> list[list[tuple[str, str | None, float]]]:
    """Reference numbers grouped into quantities: keys of one family whose values agree are one fact
    written in two units (torque_lb_ft and torque_nm); keys that disagree are separate facts."""
    groups: list[list[tuple[str, str | None, float]]] = []
    for key, value in reference.items():
        unit = unit_for_key(key)
        for group in groups:
            _, g_unit, g_value = group[0]
            if unit and g_unit and unit_family(unit) == unit_family(g_unit) \
                    and _within(convert(value, unit, g_unit), g_value, tolerance):
                group.append((key, unit, value))
                break
        else:
            groups.append([(key, unit, value)])
    return groups


def numeric_accuracy(reference: Mapping[str, float], answer: str, tolerance: float,
                     question: str = "") -> tuple[float | None, dict]:
    """Score in [0, 1] for the reference numbers (None when there are none) and per-key outcomes.

    Per fact, the answer's claims are its distinct values in the fact's unit family, in order
    (a restatement in another unit is the same claim). The fact is right (1) when a claim equals
    it and no *competing* claim comes before that one; competing means matching no reference
    number of the family and no number given in the question. It is hedged (0.5) when it is
    stated only after a competing value or sits inside a wide range; otherwise wrong (0). With
    no number of that family at all, a bare number equal to the fact counts (years excepted).
    Keys of unknown unit count when any number matches.
    """
    if not reference:
        return None, {}
    quantities = extract_quantities(answer)
    given = extract_quantities(question) if question else []
    groups = _group_reference(reference, tolerance)
    family_facts: dict[str, list[tuple[str, float]]] = {}
    groups_per_family: dict[str, int] = {}
    for group in groups:
        for _, unit, value in group:
            if unit:
                family_facts.setdefault(unit_family(unit), []).append((unit, value))
        if group[0][1]:
            family = unit_family(group[0][1])
            groups_per_family[family] = groups_per_family.get(family, 0) + 1
    outcomes: dict[str, str] = {}
    scores = []
    for group in groups:
        best = "wrong"
        for _, unit, value in group:
            if unit is None:
                hits = any(_claim_matches((q.low, q.high), value, tolerance) == "exact" for q in quantities)
                outcome = "right" if hits else "wrong"
            else:
                family = unit_family(unit)
                known = [convert(v, u, unit) for u, v in family_facts[family]]
                known += [q.value_in(unit)[0] for q in given
                          if (q.family == family or q.unit is None) and not q.is_range]
                outcome = _fact_outcome(quantities, unit, value, tolerance, known, groups_per_family[family] > 1)
            if _RANK[outcome] > _RANK[best]:
                best = outcome
        for key, _, _ in group:
            outcomes[key] = best
        scores.append(_CREDIT[best])
    return sum(scores) / len(scores), outcomes


_RANK = {"wrong": 0, "hedged": 1, "right_no_unit": 2, "right": 3}
_CREDIT = {"wrong": 0.0, "hedged": HEDGED_CREDIT, "right_no_unit": 1.0, "right": 1.0}


def _fact_outcome(quantities: Sequence[Quantity], unit: str, value: float, tolerance: float,
                  known: Sequence[float], several_facts: bool) -> str:
    claims, unitless = _claims(quantities, unit, value, tolerance, split_ranges=several_facts)
    results = [_claim_matches(c, value, tolerance) for c in claims]
    if unitless:  # bare numbers carry no family, so their order says nothing about what was asked
        return "right_no_unit" if "exact" in results else "wrong"
    if "exact" not in results:
        return "hedged" if "hedged" in results else "wrong"
    first = results.index("exact")

    def competing(claim: tuple[float, float]) -> bool:
        return not any(_claim_matches(claim, k, tolerance) == "exact" for k in known)

    return "hedged" if any(competing(c) for c in claims[:first]) else "right"


def repetition_rate(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one: 0 for fresh text, near 1 for a loop."""
    words = re.findall(r"\w+", text.lower())
    if len(words) <= n:
        return 0.0
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))


def states_specs(answer: str, allowed: Mapping[str, float] | None = None, tolerance: float = 0.0) -> bool:
    """Does the answer give spec figures (a number with a car unit, or a price) other than ``allowed``?"""
    known = [(unit, v) for k, v in (allowed or {}).items() if (unit := unit_for_key(k))]

    def is_known(q: Quantity) -> bool:
        return any(unit_family(u) == q.family and _within(q.value_in(u)[0], v, tolerance) for u, v in known)

    return any(q.family in SPEC_FAMILIES and not is_known(q) for q in extract_quantities(answer))


def verdict_for(score: float) -> str:
    if score >= CORRECT_AT:
        return "correct"
    return "partial" if score > 0 else "wrong"


GUARD = "guard"  # the stop reason of an answer the retrieval guard gave without generating


def score_answer(case: EvalCase, answer: str, *, tolerance: float, stop_reason: str = "eos",
                 n_tokens: int | None = None, computed: Sequence[str] = ()) -> dict[str, Any]:
    """Verdict, score and every metric for one answer to one case (a JSON-ready dict).

    ``stop_reason`` "guard" marks the retrieval guard's answer: refused, not generated.
    ``computed``: texts of the derived passages the answer was given (figures worked out from the store)."""
    guard = stop_reason == GUARD
    refused = guard or is_refusal(answer)
    result: dict[str, Any] = {
        "verdict": "unscored", "score": None, "numeric_accuracy": None, "numeric_detail": {},
        "concept_coverage": None, "terms_found": [], "terms_missing": [], "refused": refused, "guard": guard,
        "clean_stop": None if guard else stop_reason == "eos", "stop_reason": stop_reason,
        "repetition_rate": None if guard else round(repetition_rate(answer), 4),
        "length_tokens": None if guard else n_tokens if n_tokens is not None else word_count(answer),
        "length_words": None if guard else word_count(answer),
        "hallucinated": hallucinated_figures(answer, case.store or {"made_up": case.expect_refusal},
                                             reference=case.reference,
                                             question=f"{case.question} {case.input}", tolerance=tolerance,
                                             computed=computed),
    }
    if not answer.strip():
        result.update(verdict="empty", score=0.0)
        return result
    if case.expect_refusal:  # figures about a real car named alongside (the reference) are fine
        invents = states_specs(answer, case.reference, tolerance)
        score = (HEDGED_CREDIT if invents else 1.0) if refused else 0.0
        result.update(score=score, verdict="correct" if score == 1.0 else verdict_for(score))
        return result
    components: list[float] = []
    question = f"{case.question} {case.input}"
    reference = case.reference or _numbers_in_text(case.reference_text)
    if reference:
        accuracy, detail = numeric_accuracy(reference, answer, tolerance, question)
        result.update(numeric_accuracy=accuracy, numeric_detail=detail)
        if accuracy is not None:
            components.append(accuracy)
    # Key terms the question already says are not evidence: repeating the question earns nothing.
    terms = [t for t in case.key_terms if not term_present(t, normalize(question))]
    if terms:
        coverage, found, missing = concept_coverage(terms, answer)
        result.update(concept_coverage=coverage, terms_found=found, terms_missing=missing)
        if coverage is not None:
            components.append(coverage)
    elif not reference and case.reference_text.strip():
        components.append(content_recall(case.reference_text, answer, exclude=question))
        result["concept_coverage"] = components[-1]
    if not components:
        return result
    score = sum(components) / len(components)
    verdict = "refused" if refused and score == 0 else verdict_for(score)
    result.update(score=round(score, 4), verdict=verdict)
    return result


def _numbers_in_text(text: str) -> dict[str, float]:
    """Reference numbers read from a free-text reference answer ("203 hp and 184 lb-ft")."""
    numbers: dict[str, float] = {}
    for index, quantity in enumerate(extract_quantities(text)):
        if quantity.unit and quantity.family in SPEC_FAMILIES and not quantity.is_range:
            numbers[f"{quantity.unit}#{index}"] = quantity.low
    return numbers


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def _rate(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return round(sum(1 for f in flags if f) / len(flags), 4) if flags else None


def answerable(case: EvalCase) -> bool:
    """A question with a checkable answer (figures or key terms), not about a made-up model:
    refusing it is a false refusal."""
    return not case.expect_refusal and bool(case.reference or case.key_terms)


def aggregate(results: Sequence[Mapping[str, Any]], cases: Sequence[EvalCase] | None = None) -> dict[str, Any]:
    """Category-level numbers for one side from its per-item results.

    Refusals: ``refusal_rate`` (all items refused, by the model or the guard),
    ``guard_refusal_rate`` (answered by the guard), ``false_refusal_rate`` (answerable items
    refused), ``correct_refusal_rate`` (made-up-model items refused properly, the guard's
    refusals included) and ``model_correct_refusal_rate`` (the same without the guard's help:
    only the model's own refusals count). Clean stop, repetition and length cover the answers
    the model generated (not the guard's).
    """
    cases = list(cases or [])
    scored = [r for r in results if r.get("score") is not None]
    generated = [r for r in results if not r.get("guard")]
    refusal_cases = [r for r, c in zip(results, cases) if c.expect_refusal]
    answerable_cases = [r for r, c in zip(results, cases) if answerable(c)]
    return {
        "score": _mean(r["score"] for r in scored),
        "correct_rate": _rate(r["verdict"] == "correct" for r in scored),
        "numeric_accuracy": _mean(r.get("numeric_accuracy") for r in results),
        "concept_coverage": _mean(r.get("concept_coverage") for r in results),
        "refusal_rate": _rate(r.get("refused", False) for r in results),
        "guard_refusal_rate": _rate(bool(r.get("guard")) for r in results),
        "false_refusal_rate": _rate(bool(r.get("refused")) for r in answerable_cases),
        "correct_refusal_rate": _rate(r["verdict"] == "correct" for r in refusal_cases),
        "model_correct_refusal_rate": _rate(r["verdict"] == "correct" and not r.get("guard") for r in refusal_cases),
        "hallucination_rate": hallucination_rate(results),
        "clean_stop_rate": _rate(bool(r.get("clean_stop")) for r in generated),
        "repetition_rate": _mean(r.get("repetition_rate") for r in generated),
        "mean_length": _mean(r.get("length_tokens") for r in generated),
        "mean_words": _mean(r.get("length_words") for r in generated),
        "n_scored": len(scored),
        "n_guard": sum(1 for r in results if r.get("guard")),
    }


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN/inf: map them to None."""
    if value is None or not math.isfinite(value):
        return None
    return value
