"""Passages computed for one question (a comparison's differences, a fuel cost): their figures are the
generator's figures, retrieval places them after the named vehicles, and training contexts show them
only where their vehicles may be shown."""

from __future__ import annotations

import json
import random
import re

import pytest

from carexpert.cli.main import main
from carexpert.dataset import units
from carexpert.dataset.asking import fill_question
from carexpert.dataset.gen_buying import fuel_answer, savings_answer
from carexpert.dataset.gen_comparisons import compare_answer, comparison_kinds, comparison_reference, vehicle_pairs
from carexpert.dataset.grounding import DISTRACTOR_ONLY, ORACLE, GroundingPlan, ground_record
from carexpert.evaluation.retrieve import case_retrieval, passages_of
from carexpert.knowledge import load_knowledge
from carexpert.knowledge.derived import (
    FuelAssumptions,
    comparison_passage,
    derived_passages,
    fuel_assumptions,
    fuel_passage,
)
from carexpert.knowledge.store import KnowledgeStore, build_store
from carexpert.retrieval import Retriever

RAM, RIDGELINE = "ram-1500-2019-tradesman", "honda-ridgeline-2024-sport"
FRONTIER, TUNDRA = "nissan-frontier-2022-s", "toyota-tundra-2022-sr"
PORSCHE, EV6 = "porsche-911-2023-carrera", "kia-ev6-2022-wind"
RAM_VS_RIDGELINE = "Which is more powerful: the 2019 Ram 1500 or the 2024 Honda Ridgeline Sport?"


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> KnowledgeStore:
    path = tmp_path_factory.mktemp("kb") / "knowledge.sqlite"
    build_store(path)
    return KnowledgeStore(path)


@pytest.fixture(scope="module")
def retriever(store) -> Retriever:
    return Retriever(store, top_k=3, max_context_tokens=512)


# -- the figures are the generator's figures ------------------------------------------------------------

def test_known_pairs_state_the_differences_of_the_reference_answers(knowledge):
    ram, ridgeline = knowledge.vehicle(RAM), knowledge.vehicle(RIDGELINE)
    answer = compare_answer(random.Random(0), ram, ridgeline, "power")
    assert comparison_reference(ram, ridgeline, answer)["power_difference_hp"] == 25
    text = comparison_passage(ram, ridgeline).text
    assert text.startswith("2019 Ram 1500 Tradesman vs 2024 Honda Ridgeline Sport.")
    assert "Power: the Ram 1500 is more powerful, 305 hp versus 280 hp, a difference of 25 hp." in text
    frontier, tundra = knowledge.vehicle(FRONTIER), knowledge.vehicle(TUNDRA)
    assert "Base MSRP: the Frontier is cheaper, $27,840 versus $35,950, a difference of $8,110." in \
        comparison_passage(frontier, tundra).text


def test_every_single_figure_comparison_answer_states_what_the_passage_states(knowledge):
    checked = 0
    for a, b in vehicle_pairs(knowledge):
        text = comparison_passage(a, b).text
        for kind in comparison_kinds(a, b):
            if kind == "overall":
                continue
            answer = compare_answer(random.Random(1), a, b, kind)
            stated = re.search(r": (.+?) versus (.+?) for the .+?, a difference of (.+?)\.", answer)
            if stated is None:  # a tie: "They're tied: both ... come in at 280 hp."
                assert "for both." in text, (a.id, b.id, kind)
                continue
            winner_value, loser_value, difference = stated.groups()
            assert f"{winner_value} versus {loser_value}" in text and f"a difference of {difference}." in text, \
                (a.id, b.id, kind, text)
            for key, value in comparison_reference(a, b, answer).items():
                if "difference" in key:
                    written = {"price_difference_usd": units.fmt_usd,
                               "zero_to_sixty_difference_s": units.fmt_decimal}.get(key, lambda v: str(int(v)))(value)
                    assert f"a difference of {written}" in text, (a.id, b.id, key)
            checked += 1
    assert checked > 500


def test_a_plug_in_hybrids_range_is_named_its_electric_range(knowledge):
    model3, model_y = knowledge.vehicle("tesla-model-3-2024-rwd"), knowledge.vehicle("tesla-model-y-2023-long-range")
    prime = knowledge.vehicle("toyota-prius-prime-2023-se")
    assert "Electric range: the Model 3 has more range, 272 miles versus 44 miles, a difference of 228 miles." \
        in comparison_passage(model3, prime).text
    both_electric = comparison_passage(model3, model_y).text
    assert "Range: the Model Y has more range, 330 miles versus 272 miles" in both_electric
    assert "Electric range" not in both_electric and "L/100 km" not in both_electric


def test_metric_economy_and_the_quicker_car(knowledge):
    text = comparison_passage(knowledge.vehicle("subaru-brz-2022-premium"), knowledge.vehicle(PORSCHE)).text
    assert "Fuel economy: the BRZ is more fuel-efficient, 22 mpg versus 20 mpg (10.7 versus 11.8 L/100 km), " \
           "a difference of 2 mpg." in text
    assert "0-60" not in text  # the BRZ's time is not published
    gr86 = comparison_passage(knowledge.vehicle("toyota-gr86-2022-base"), knowledge.vehicle(PORSCHE)).text
    assert "0-60 mph: the Porsche 911 is quicker, 4.0 seconds versus 6.1 seconds, a difference of 2.1 seconds." in gr86
    assert "Curb weight: the GR86 is lighter, 2,811 lb versus 3,354 lb, a difference of 543 lb." in gr86


@pytest.mark.parametrize("miles, price", [(10000, 3.0), (15000, 4.0), (10000, 4.0), (15000, 3.0)])
def test_fuel_passage_with_the_questions_mileage_and_price_matches_fuel_answer(knowledge, miles, price):
    porsche = knowledge.vehicle(PORSCHE)
    _, candidates = fuel_answer(porsche, miles, price)
    for pattern in knowledge.questions["buying"]["fuel_cost_custom"]:
        question = fill_question(pattern, {"v": porsche.name, "miles": units.fmt_int(miles),
                                           "price": units.fmt_price(price)})
        assert fuel_assumptions(question, knowledge.assumptions) == FuelAssumptions(miles, price)
        [passage] = derived_passages(question, [porsche], knowledge.assumptions)
        assert passage.id == f"derived:fuel:{PORSCHE}" and passage.sources == (PORSCHE,)
        assert f"about {candidates['fuel_used_gal'][1]} gallons" in passage.text
        assert f"roughly {candidates['annual_fuel_cost_usd'][1]} a year" in passage.text


def test_fuel_passage_with_the_default_assumptions_matches_fuel_answer(knowledge):
    miles, price = knowledge.assumptions["annual_miles"], knowledge.assumptions["gas_price_usd"]
    for vehicle in knowledge.vehicles:
        passage = fuel_passage(vehicle, fuel_assumptions("What's the yearly fuel cost?", knowledge.assumptions))
        if vehicle.is_electric or not vehicle.mpg_combined:
            assert passage is None
            continue
        _, candidates = fuel_answer(vehicle, miles, price)
        assert f"about {candidates['fuel_used_gal'][1]} gallons, roughly {candidates['annual_fuel_cost_usd'][1]} a year" \
            in passage.text
    camry = knowledge.vehicle("toyota-camry-2024-le")
    for pattern in knowledge.questions["buying"]["fuel_cost"]:
        assert [p.id for p in derived_passages(fill_question(pattern, {"v": camry.name}), [camry],
                                               knowledge.assumptions)] == ["derived:fuel:toyota-camry-2024-le"]


def test_savings_and_payback_questions_get_the_savings_answers_figures(knowledge):
    for hybrid_id, gas_id in knowledge.hybrid_siblings:
        hybrid, gas = knowledge.vehicle(hybrid_id), knowledge.vehicle(gas_id)
        _, candidates = savings_answer(knowledge, hybrid, gas)
        for pattern in knowledge.questions["buying"]["hybrid_savings"] + knowledge.questions["buying"]["hybrid_payback"]:
            question = fill_question(pattern, {"hybrid": hybrid.name, "gas": gas.name})
            [passage] = derived_passages(question, [hybrid, gas], knowledge.assumptions)
            for key in ("annual_savings_usd", "hybrid_fuel_cost_usd", "gas_fuel_cost_usd", "payback_years"):
                if key in candidates:
                    assert candidates[key][1] in passage.text, (hybrid.id, key, passage.text)
        assert "Fuel cost" not in derived_passages(f"Which is quicker, the {hybrid.name} or the {gas.name}?",
                                                   [hybrid, gas], knowledge.assumptions)[0].text


def test_no_derived_passage_when_nothing_asked_needs_arithmetic(knowledge):
    camry, ev6 = knowledge.vehicle("toyota-camry-2024-le"), knowledge.vehicle(EV6)
    assert derived_passages("What is the hp of the 2024 Camry LE?", [camry], knowledge.assumptions) == []
    assert derived_passages("How much would I spend on gas per year with the EV6?", [ev6], knowledge.assumptions) == []
    assert derived_passages("How much would I spend on gas per year?", [], knowledge.assumptions) == []


# -- retrieval ------------------------------------------------------------------------------------------

def test_retrieval_puts_the_comparison_after_the_named_vehicles_within_k(retriever, store):
    hits = retriever.retrieve(RAM_VS_RIDGELINE).hits
    assert [h.passage.id for h in hits] == [RAM, RIDGELINE, f"derived:compare:{RAM}:{RIDGELINE}"]
    assert hits[2].how == "computed" and hits[2].passage.kind == "derived"
    assert [h.passage.id for h in retriever.retrieve(RAM_VS_RIDGELINE, k=2).hits] == [RAM, RIDGELINE]
    reversed_ids = [h.passage.id for h in retriever.retrieve(
        "Is the 2024 Honda Ridgeline Sport more powerful than the 2019 Ram 1500?").hits]
    assert reversed_ids[2] == f"derived:compare:{RIDGELINE}:{RAM}"
    lengths = {h.passage.id: len(h.passage.text) for h in hits}
    tight = Retriever(store, top_k=3, max_context_tokens=lengths[RAM] + lengths[RIDGELINE] + 10,
                      count_tokens=len)
    assert [h.passage.id for h in tight.retrieve(RAM_VS_RIDGELINE).hits] == [RAM, RIDGELINE]


def test_retrieval_of_a_fuel_cost_question_and_of_a_plain_spec_question(retriever):
    question = "If I drive 15,000 miles a year and gas is $3.00 a gallon, what would the 2023 Porsche 911 Carrera cost me in fuel?"
    hits = retriever.retrieve(question).hits
    assert [h.passage.id for h in hits[:2]] == [PORSCHE, f"derived:fuel:{PORSCHE}"]
    assert "about 750 gallons, roughly $2,250 a year" in hits[1].passage.text
    assert not [h for h in retriever.retrieve("What is the hp of the 2024 Camry LE?").hits
                if h.passage.kind == "derived"]
    assert not [h for h in retriever.retrieve("Estimate the annual gas bill for the 2022 Kia EV6 Wind.").hits
                if h.passage.kind == "derived"]


def test_derived_passages_in_eval_items_and_kb_search_json(retriever, tmp_path, monkeypatch, capsys):
    saved = case_retrieval(retriever.retrieve(RAM_VS_RIDGELINE), guard=True)
    derived = json.loads(json.dumps(saved.hits))[2]
    assert derived["kind"] == "derived" and derived["sources"] == [RAM, RIDGELINE]
    assert "sources" not in saved.hits[0]
    assert passages_of(saved.hits) == list(retriever.retrieve(RAM_VS_RIDGELINE).passages)
    monkeypatch.chdir(tmp_path)
    assert main(["kb", "search", RAM_VS_RIDGELINE, "--json"]) == 0
    out = capsys.readouterr().out
    hits = json.loads(out[out.index("["):])
    assert [h["kind"] for h in hits] == ["vehicle", "vehicle", "derived"] and hits[2]["how"] == "computed"
    assert main(["kb", "show", f"derived:compare:{RAM}:{RIDGELINE}"]) == 2
    assert "computed for a question" in capsys.readouterr().err


def test_a_stored_passage_is_unchanged_by_the_sources_field(store):
    passage = store.passage(RAM)
    assert passage is not None and passage.sources == ()
    assert passage == type(passage)(passage.id, passage.kind, passage.title, passage.text)


# -- training contexts ----------------------------------------------------------------------------------

def _record(instruction: str, fact_ids: list[str], index: int = 0) -> dict:
    return {"id": f"derived-{index}", "instruction": instruction, "input": "", "output": "answer",
            "category": "comparisons", "kind": "compare_power", "fact_ids": fact_ids}


def test_a_comparison_records_context_holds_the_comparison(retriever):
    plan = GroundingPlan(distractor_only_share=0.0)
    for index in range(6):  # oracle-first and shuffled placements alike
        record = ground_record(_record(RAM_VS_RIDGELINE, [f"vehicle:{RAM}", f"vehicle:{RIDGELINE}"], index),
                               retriever, plan)
        assert record["grounding"] == ORACLE
        assert sorted(record["context_ids"]) == sorted([RAM, RIDGELINE, f"derived:compare:{RAM}:{RIDGELINE}"])
        assert any("a difference of 25 hp" in text for text in record["context"])


def test_a_fuel_cost_records_context_holds_the_fuel_passage(retriever):
    record = _record("How much would I spend on gas per year with the 2023 Porsche 911 Carrera?", [f"vehicle:{PORSCHE}"])
    grounded = ground_record(record, retriever, GroundingPlan(distractor_only_share=0.0))
    assert {f"derived:fuel:{PORSCHE}", PORSCHE} <= set(grounded["context_ids"])


def test_a_distractor_only_record_holds_nothing_computed_from_the_dropped_vehicle(retriever):
    question = "How much would I spend on gas per year with the 2023 Porsche 911 Carrera?"
    grounded = ground_record(_record(question, [f"vehicle:{PORSCHE}"]), retriever, GroundingPlan(distractor_only_share=1.0))
    assert grounded["grounding"] == DISTRACTOR_ONLY and grounded["context"]
    assert PORSCHE not in grounded["context_ids"] and not any(PORSCHE in i for i in grounded["context_ids"])
    assert not any("$2,100" in text for text in grounded["context"])
    # a question that names a second car: the comparison is computed from the dropped vehicle too
    grounded = ground_record(_record(RAM_VS_RIDGELINE, [f"vehicle:{RAM}"]), retriever,
                             GroundingPlan(distractor_only_share=1.0))
    assert grounded["grounding"] == DISTRACTOR_ONLY and RIDGELINE in grounded["context_ids"]
    assert not any(RAM in i for i in grounded["context_ids"]), grounded["context_ids"]


def test_a_held_out_vehicles_derived_passage_never_reaches_a_training_context(retriever):
    held = {f"vehicle:{RIDGELINE}"}
    # a record about the Ram alone whose question names the held-out Ridgeline too
    record = _record(RAM_VS_RIDGELINE, [f"vehicle:{RAM}"])
    for share in (0.0, 1.0):
        grounded = ground_record(record, retriever, GroundingPlan(distractor_only_share=share), held_out=held)
        assert not any(RIDGELINE in i for i in grounded["context_ids"]), grounded["context_ids"]


def test_built_training_data_shows_comparisons_and_fuel_costs_but_nothing_of_an_unseen_fact(tmp_path, monkeypatch):
    from carexpert.config import Config
    from carexpert.dataset import build_from_config
    from carexpert.dataset.splits import unseen_test_facts

    monkeypatch.chdir(tmp_path)
    built = build_from_config(Config())
    unseen = {f.removeprefix("vehicle:") for f in unseen_test_facts(built.splits)}
    assert unseen
    arithmetic = 0
    for record in built.splits["train"] + built.splits["validation"]:
        ids = record["context_ids"]
        assert not unseen & {part for i in ids for part in i.removeprefix("derived:").split(":")}, (record["id"], ids)
        kind = record["kind"]
        needs = kind in ("fuel_cost", "hybrid_savings") or (kind.startswith("compare_")
                                                             and kind not in ("compare_short", "compare_fictional"))
        if needs and record["grounding"] == ORACLE:
            assert any(i.startswith("derived:") for i in ids), (record["id"], ids)
            arithmetic += 1
    assert arithmetic > 50
