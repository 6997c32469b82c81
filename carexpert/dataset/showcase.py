"""The seed project's showcase questions as always-included evaluation cases.

Their reference answers are built by the same code that writes the training answers,
from ``showcase.toml``; the questions themselves are reserved, so the generator never
puts them (in normalized form) into any split but the test set.
"""

from __future__ import annotations

import random
from typing import Any

from carexpert.dataset.gen_buying import BUDGET_FACT, budget_answer
from carexpert.dataset.gen_comparisons import compare_answer, comparison_reference
from carexpert.dataset.gen_concepts import concept_answer
from carexpert.dataset.gen_maintenance import interval_reference, maintenance_answer
from carexpert.dataset.gen_specs import asked_reference, spec_answer
from carexpert.dataset.records import (
    Draft,
    normalize_question,
    record_id,
    stated_reference,
    terms_in,
)
from carexpert.dataset.vehicle_text import reference_prefix, vehicle_reference
from carexpert.knowledge import Knowledge, load_knowledge

SHOWCASE_SEED = "carexpert-showcase"
_SPEC_KINDS = {("hp", "torque"): "hp_torque", ("hp",): "hp", ("torque",): "torque"}


def showcase_cases(knowledge: Knowledge | None = None) -> list[dict[str, Any]]:
    """The showcase questions as test records (``"holdout": "showcase"``), in file order."""
    knowledge = knowledge or load_knowledge()
    return [_case(knowledge, case, index) for index, case in enumerate(knowledge.showcase)]


def showcase_question_keys(knowledge: Knowledge | None = None) -> set[str]:
    return {normalize_question(c["instruction"], c["input"]) for c in showcase_cases(knowledge)}


def showcase_fact_ids(knowledge: Knowledge | None = None) -> set[str]:
    """Facts the showcase relies on; they are never held out of training."""
    return {fact for case in showcase_cases(knowledge) for fact in case["fact_ids"]}


def _case(knowledge: Knowledge, case: dict[str, Any], index: int) -> dict[str, Any]:
    rng = random.Random(f"{SHOWCASE_SEED}:{index}")
    question = case["question"]
    kind = case["kind"]
    if kind == "concept":
        concept = knowledge.concept(case["id"])
        answer_kind = "compare" if concept.compare else case.get("answer", "explain")
        if case["id"] == "battery-electric-vehicle":
            answer_kind = "pros_cons"
        text, extra = concept_answer(rng, knowledge, concept, answer_kind)
        draft = Draft(question, text, f"showcase_{answer_kind}", (concept.fact_id, *extra),
                      key_terms=terms_in(text, concept.key_terms))
        category = concept.category
    elif kind == "maintenance":
        entry = knowledge.maintenance_item(case["id"])
        text = maintenance_answer(rng, entry, "interval")
        draft = Draft(question, text, "showcase_interval", (entry.fact_id,), reference=interval_reference(entry, text),
                      key_terms=terms_in(text, entry.key_terms))
        category = "maintenance"
    elif kind == "budget":
        text, picks = budget_answer(rng, knowledge, int(case["max_usd"]), None)
        candidates = {}
        for vehicle in picks:
            candidates.update(vehicle_reference(vehicle, reference_prefix(vehicle)))
        budget_topic = knowledge.concept("budget-tiers")
        draft = Draft(question, text, "showcase_budget", (BUDGET_FACT, *(v.fact_id for v in picks)),
                      reference=stated_reference(text, candidates), key_terms=terms_in(text, budget_topic.key_terms))
        category = "buying"
    elif kind == "compare_vehicles":
        a, b = (knowledge.vehicle(i) for i in case["ids"])
        text = compare_answer(rng, a, b, "overall")
        draft = Draft(question, text, "showcase_compare", (a.fact_id, b.fact_id),
                      reference=comparison_reference(a, b, text))
        category = "comparisons"
    else:  # spec
        vehicle = knowledge.vehicle(case["id"])
        spec_kind = _SPEC_KINDS[tuple(case["fields"])]
        text = spec_answer(rng, knowledge, vehicle, spec_kind) or ""
        draft = Draft(question, text, "showcase_spec", (vehicle.fact_id,),
                      reference=asked_reference(text, vehicle, spec_kind))
        category = "specs"
    record = draft.to_record(category)
    record["id"] = record_id("showcase", normalize_question(question))
    record["holdout"] = "showcase"
    return record
