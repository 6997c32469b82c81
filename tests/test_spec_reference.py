"""A spec question's reference holds the figures it asks for, not every figure its answer states;
figures stated beyond those asked are still judged, by the hallucinated-figure check."""

from __future__ import annotations

import random

import pytest

from carexpert.dataset.gen_specs import ASKED_FIGURES, SPEC_KINDS, asked_reference, spec_answer, spec_items
from carexpert.dataset.records import stated_reference
from carexpert.dataset.showcase import showcase_cases
from carexpert.dataset.vehicle_text import vehicle_reference
from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.figures import store_expectations
from carexpert.evaluation.metrics import score_answer
from carexpert.knowledge import load_knowledge

TOLERANCE = 0.03
SEEDS = range(6)  # each seed picks other templates: the reference must hold for every phrasing


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def test_every_spec_kind_says_which_figures_it_asks_for():
    assert set(ASKED_FIGURES) == set(SPEC_KINDS)
    assert ASKED_FIGURES["msrp"] == {"msrp_usd"} and ASKED_FIGURES["overview"] is None
    assert ASKED_FIGURES["hp_torque"] == ASKED_FIGURES["hp"] | ASKED_FIGURES["nm"]


def test_a_spec_reference_is_the_asked_figures_its_answer_states(knowledge):
    """For every vehicle, kind and phrasing: only asked keys, never empty, and exactly the stated
    figures among the asked ones (an overview keeps all it states)."""
    checked = extra_dropped = 0
    for item in spec_items(knowledge):
        for seed in SEEDS:
            draft = item.build(random.Random(seed))
            if draft is None:
                continue
            stated = stated_reference(draft.output, vehicle_reference(knowledge.vehicle(item.fact_ids[0][8:])))
            asked = ASKED_FIGURES[draft.kind]
            assert draft.reference, (draft.kind, draft.output)
            if asked is None:
                assert draft.reference == stated
            else:
                assert draft.reference == {k: v for k, v in stated.items() if k in asked}, draft.output
                extra_dropped += len(stated) > len(draft.reference)
            checked += 1
    assert checked > 1000 and extra_dropped > 50  # the templates do add figures nobody asked for


def test_the_showcase_spec_question_asks_for_power_and_torque(knowledge):
    spec = next(c for c in showcase_cases(knowledge) if c["kind"] == "showcase_spec")
    assert set(spec["reference"]) <= ASKED_FIGURES["hp_torque"]
    assert {"hp", "torque_lb_ft"} <= set(spec["reference"])


def _msrp_case(knowledge) -> tuple[EvalCase, object]:
    """A price question whose reference answer adds the horsepower, as the templates do."""
    vehicle = next(v for v in knowledge.vehicles if v.msrp_usd and v.hp)
    rng = random.Random(0)
    output = next(text for _ in range(200) if "hp" in (text := spec_answer(rng, knowledge, vehicle, "msrp") or ""))
    record = {"instruction": f"What is the base MSRP of the {vehicle.name}?", "fact_ids": [vehicle.fact_id],
              "reference": asked_reference(output, vehicle, "msrp")}
    case = EvalCase(id="p", category="specs", question=record["instruction"], reference_text=output,
                    reference=record["reference"], store=store_expectations(record, knowledge))
    return case, vehicle


def test_the_right_price_alone_is_a_right_answer_and_an_extra_figure_is_still_judged(knowledge):
    case, vehicle = _msrp_case(knowledge)
    assert case.reference == {"msrp_usd": vehicle.msrp_usd}
    price = f"${vehicle.msrp_usd:,.0f}"
    alone = score_answer(case, f"It starts at {price}.", tolerance=TOLERANCE)
    assert alone["numeric_accuracy"] == 1.0 and alone["hallucinated"] == []
    true_extra = score_answer(case, f"It starts at {price}, making {vehicle.hp:.0f} hp.", tolerance=TOLERANCE)
    assert true_extra["numeric_accuracy"] == 1.0 and true_extra["hallucinated"] == []
    wrong_extra = score_answer(case, f"It starts at {price}, making {vehicle.hp + 90:.0f} hp.", tolerance=TOLERANCE)
    assert wrong_extra["numeric_accuracy"] == 1.0
    assert [h["why"] for h in wrong_extra["hallucinated"]] == ["contradicts"]
    wrong_price = score_answer(case, f"It starts at ${vehicle.msrp_usd * 1.5:,.0f}.", tolerance=TOLERANCE)
    assert wrong_price["numeric_accuracy"] == 0.0 and wrong_price["hallucinated"]
