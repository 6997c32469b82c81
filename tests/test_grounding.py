"""Retrieval-augmented training records: oracle, distractor-only and refusal shapes, seeded shares."""

from __future__ import annotations

import pytest

from carexpert.dataset.grounding import (
    DISTRACTOR_ONLY,
    ORACLE,
    REFUSAL,
    GroundingPlan,
    ground_record,
    ground_records,
    shape_shares,
)
from carexpert.dataset.tokenization import prompt_for
from carexpert.evaluation.metrics import is_refusal
from carexpert.knowledge import load_knowledge
from carexpert.retrieval import Hit, Passage, Retrieval


class WordRetriever:
    """A stand-in retriever: vehicles whose model name the question contains first, then a fixed filler."""

    def __init__(self):
        knowledge = load_knowledge()
        self.passages = {v.id: Passage(v.id, "vehicle", v.name, f"{v.name}: {v.hp} hp.") for v in knowledge.vehicles}
        for concept in knowledge.concepts:
            self.passages[concept.fact_id] = Passage(concept.fact_id, "concept", concept.id, concept.summary)
        self.order = sorted(self.passages)

    def passage(self, passage_id):
        return self.passages.get(passage_id)

    def retrieve(self, question, k=None):
        k = k or 3
        named = [p for p in self.passages.values() if p.kind == "vehicle" and p.title.split(" ", 2)[2] in question]
        rest = [self.passages[i] for i in self.order if self.passages[i] not in named]
        return Retrieval(question, tuple(Hit(p, 1.0, "entity") for p in named) +
                         tuple(Hit(p, 0.5, "text") for p in rest[: k - len(named)]))


@pytest.fixture(scope="module")
def retriever():
    return WordRetriever()


def spec_record(vehicle_id: str, index: int = 0) -> dict:
    vehicle = load_knowledge().vehicle(vehicle_id)
    return {"id": f"specs-{index}", "instruction": f"How much power does the {vehicle.name} make?", "input": "",
            "output": f"The {vehicle.name} makes {vehicle.hp} hp.", "category": "specs", "kind": "hp",
            "fact_ids": [vehicle.fact_id], "reference": {"hp": vehicle.hp}}


def test_oracle_record_keeps_its_answer_and_holds_the_answering_passage(retriever):
    plan = GroundingPlan(distractor_only_share=0.0)
    record = ground_record(spec_record("toyota-camry-2024-le"), retriever, plan)
    assert record["grounding"] == ORACLE
    assert "toyota-camry-2024-le" in record["context_ids"] and len(record["context"]) == 3
    assert record["output"] == "The 2024 Toyota Camry LE makes 203 hp."
    assert "### Context:\n[" in prompt_for(record) and "203 hp" in prompt_for(record)


def test_distractor_only_record_drops_the_passage_and_refuses_naming_context_vehicles(retriever):
    plan = GroundingPlan(distractor_only_share=1.0)
    record = ground_record(spec_record("toyota-camry-2024-le"), retriever, plan)
    assert record["grounding"] == DISTRACTOR_ONLY
    assert "toyota-camry-2024-le" not in record["context_ids"]
    assert is_refusal(record["output"]) and "203" not in record["output"]
    named = [retriever.passage(i).title for i in record["context_ids"] if retriever.passage(i).kind == "vehicle"]
    assert named and named[0] in record["output"]
    assert "reference" not in record


def test_made_up_model_gets_real_neighbours_and_the_guard_refusal(retriever):
    year = next(m.year for m in load_knowledge().fictional if m.id == "chevrolet-aurelion")
    record = {"id": "specs-x", "instruction": f"What are the specs of the {year} Chevrolet Aurelion?", "input": "",
              "output": "old", "category": "specs", "kind": "fictional_overview",
              "fact_ids": ["fictional:chevrolet-aurelion"], "expect_refusal": True}
    grounded = ground_record(record, retriever, GroundingPlan())
    assert grounded["grounding"] == REFUSAL and grounded["context"]
    assert grounded["output"].startswith(f"I have no record of the {year} Chevrolet Aurelion")
    assert is_refusal(grounded["output"])


def test_held_out_passages_never_appear_in_contexts(retriever):
    held = {"vehicle:" + retriever.order[0]}
    records = [spec_record(v.id, i) for i, v in enumerate(load_knowledge().vehicles[:30])]
    for record in ground_records(records, retriever, GroundingPlan(), held_out=held):
        assert retriever.order[0] not in record["context_ids"] or record["fact_ids"] == sorted(held)


def test_shares_follow_the_plan_for_a_fixed_seed_and_are_reproducible(retriever):
    vehicles = load_knowledge().vehicles
    records = [spec_record(vehicles[i % len(vehicles)].id, i) for i in range(400)]
    plan = GroundingPlan(distractor_only_share=0.2, seed=7)
    first = ground_records(records, retriever, plan)
    shares = shape_shares(first)
    assert abs(shares[DISTRACTOR_ONLY] - 0.2) < 0.08 and abs(shares[ORACLE] - 0.8) < 0.08
    assert first == ground_records(records, retriever, plan)
    assert ground_record(first[0], retriever, plan) == first[0]  # grounded records are left alone
