"""Grounding checks on hand-written answers: hallucinated figures against the store, the passages an
answer used, the guard's refusals and false refusals in the summary, and which sides run."""

from __future__ import annotations

import pytest
from eval_fixtures import ACCORD, CAMRY, TURBO

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.evaluation.attribution import used_passages
from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.figures import hallucinated_figures, store_expectations
from carexpert.evaluation.metrics import GUARD, aggregate, score_answer
from carexpert.evaluation.runner import choose_sides
from carexpert.evaluation.sides import baseline_side, default_sides, headline_side, parse_sides
from carexpert.knowledge import load_knowledge

TOLERANCE = 0.03


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def camry_case(knowledge) -> EvalCase:
    record = {"instruction": "How much horsepower does the 2024 Toyota Camry LE make?",
              "fact_ids": ["vehicle:toyota-camry-2024-le"], "reference": {"hp": 203, "power_kw": 151}}
    return EvalCase(id="c", category="specs", question=record["instruction"], reference={"hp": 203, "power_kw": 151},
                    store=store_expectations(record, knowledge))


def halluc(case: EvalCase, answer: str):
    return hallucinated_figures(answer, case.store or {"made_up": case.expect_refusal}, reference=case.reference,
                                question=f"{case.question} {case.input}", tolerance=TOLERANCE)


def test_store_expectations_come_from_fact_ids_and_the_vehicle_table(knowledge):
    store = camry_case(knowledge).store
    assert store["vehicles"] == ["toyota-camry-2024-le"] and store["made_up"] is False
    assert store["figures"]["toyota_camry_2024_le_hp"] == 203
    assert store["figures"]["toyota_camry_2024_le_torque_nm"] == 250
    assert store["lacks"] == ["time"]  # vehicles.csv leaves the Camry's 0-60 blank
    made_up = store_expectations({"instruction": "Hp rating for the 2024 Volkswagen Arvento?",
                                  "fact_ids": ["fictional:volkswagen-arvento"]}, knowledge)
    assert made_up == {"vehicles": [], "figures": {}, "lacks": [], "made_up": True}
    concept = store_expectations({"instruction": "What is a turbo?", "fact_ids": ["concept:turbocharger"]}, knowledge)
    assert concept == {}
    # a vehicle the answer lists but the question does not name is not what the question is about
    listed = store_expectations({"instruction": "Give me a few examples of front-wheel drive cars.",
                                 "fact_ids": ["concept:front-wheel-drive", "vehicle:toyota-camry-2024-le"]}, knowledge)
    assert listed == {}


def test_a_figure_for_a_made_up_model_is_hallucinated(knowledge):
    case = EvalCase(id="z", category="specs", question="How much power does the 2024 Toyota Zephyr GT make?",
                    expect_refusal=True,
                    store=store_expectations({"instruction": "x", "fact_ids": ["fictional:toyota-zephyr"]}, knowledge))
    found = halluc(case, "The 2024 Toyota Zephyr GT makes 250 hp and 280 lb-ft.")
    assert [(f["text"], f["why"]) for f in found] == [("250 hp", "made_up"), ("280 lb-ft", "made_up")]
    assert halluc(case, "I have no record of the Toyota Zephyr GT, so I won't guess its figures.") == []
    # a user case that expects a refusal and names no store vehicle is judged as made up too
    user = EvalCase(id="u", category="user", question="Is the Zephyrion fast?", expect_refusal=True)
    invented = score_answer(user, "It does 0-60 in 4.1 seconds.", tolerance=TOLERANCE)["hallucinated"]
    assert invented[0]["why"] == "made_up"


def test_a_real_vehicle_with_a_wrong_figure_is_hallucinated_and_the_right_one_in_another_unit_is_not(knowledge):
    case = camry_case(knowledge)
    assert halluc(case, "The 2024 Toyota Camry LE makes 250 hp.") == [
        {"text": "250 hp", "family": "power", "why": "contradicts"}]
    assert halluc(case, "It makes about 151 kW.") == []  # 203 hp in kilowatts
    assert halluc(case, "203 hp (151 kW) and 249 N·m, or 184 lb-ft.") == []  # torque in either unit is the store's
    assert halluc(case, "It returns 7.4 L/100 km, costs $26,420 and weighs 1,501 kg.") == []
    assert halluc(case, "It weighs 4,000 lb.")[0]["why"] == "contradicts"
    assert halluc(case, "It goes from 0-60 in 7.9 seconds.") == [
        {"text": "7.9 seconds", "family": "time", "why": "not_published"}]  # the store has no 0-60 for it
    assert halluc(case, "It is $3.50 a gallon to fill up, and the 2.5-liter engine is smooth.") == []
    assert halluc(case, "Somewhere between 180-210 hp.") == []  # a range around the store's value is a hedge
    concept = EvalCase(id="t", category="engines", question="What is a turbo?")
    assert halluc(concept, "A turbo adds 50 hp.") is None  # no vehicle named: nothing to judge


def test_numbers_of_the_question_and_the_reference_are_not_hallucinated(knowledge):
    record = {"instruction": "If I drive 15,000 miles a year and gas is $3.00 a gallon, what would the 2024 Toyota "
                             "Camry LE cost me in fuel?", "fact_ids": ["vehicle:toyota-camry-2024-le"]}
    case = EvalCase(id="f", category="buying", question=record["instruction"], reference={"annual_fuel_cost_usd": 1406},
                    store=store_expectations(record, knowledge))
    assert halluc(case, "At 15,000 miles a year and 32 mpg, that is about $1,406 a year.") == []
    comparison = {"instruction": "Which is more powerful: the 2019 Ram 1500 or the 2024 Honda Ridgeline Sport?",
                  "fact_ids": ["vehicle:ram-1500-2019-tradesman", "vehicle:honda-ridgeline-2024-sport"]}
    both = EvalCase(id="r", category="comparisons", question=comparison["instruction"],
                    store=store_expectations(comparison, knowledge))
    assert halluc(both, "Torque is 269 lb-ft for the Ram 1500 and 262 lb-ft for the Ridgeline.") == []


def test_figures_of_the_passages_retrieval_computed_are_not_hallucinated_and_a_wrong_difference_is(knowledge):
    from carexpert.knowledge.derived import comparison_passage

    comparison = {"instruction": "Which is more powerful: the 2019 Ram 1500 or the 2024 Honda Ridgeline Sport?",
                  "fact_ids": ["vehicle:ram-1500-2019-tradesman", "vehicle:honda-ridgeline-2024-sport"]}
    case = EvalCase(id="r", category="comparisons", question=comparison["instruction"],
                    reference={"power_difference_hp": 25}, store=store_expectations(comparison, knowledge))
    computed = comparison_passage(knowledge.vehicle("ram-1500-2019-tradesman"),
                                  knowledge.vehicle("honda-ridgeline-2024-sport")).text
    torque_gap = "Torque differs by 7 lb-ft."  # 269 - 262: in the computed passage, not in the reference
    assert "7 lb-ft" in computed
    assert halluc(case, torque_gap)[0]["why"] == "contradicts"  # without the computed passage: unbacked
    scored = score_answer(case, torque_gap, tolerance=TOLERANCE, computed=[computed])
    assert scored["hallucinated"] == []
    wrong = score_answer(case, "A difference of 11 hp.", tolerance=TOLERANCE, computed=[computed])
    assert [f["text"] for f in wrong["hallucinated"]] == ["11 hp"]


def test_used_passages_are_those_whose_figures_or_key_terms_the_answer_states():
    passages = [CAMRY, ACCORD, TURBO]
    assert used_passages("The 2024 Camry LE makes 203 hp.", passages, question="Camry hp?") == [CAMRY.id]
    assert used_passages("That is 143 kW.", passages, question="Accord power?") == [ACCORD.id]  # 192 hp in kW
    both = used_passages("Both make 32 mpg combined.", passages, question="Camry or Accord mpg?")
    assert both == [CAMRY.id, ACCORD.id]
    turbo = "Exhaust gas spins a turbine that drives a compressor, forcing in more air."
    assert used_passages(turbo, passages, question="How does a turbocharger work?") == [TURBO.id]
    assert used_passages("I'm not sure.", passages, question="Camry hp?") == []
    # a number the question gave is not evidence of reading a passage
    assert used_passages("You said 203 hp.", [CAMRY], question="Is 203 hp a lot for a Camry?") == []


def test_summary_counts_guard_refusals_apart_and_false_refusals(knowledge):
    made_up = EvalCase(id="m", category="specs", question="Zephyr GT hp?", expect_refusal=True)
    real = camry_case(knowledge)
    cases = [made_up, made_up, real, real]
    refusal = "I have no record of the Zephyr GT in my data, so I don't have verified figures for it and won't guess."
    results = [score_answer(made_up, refusal, tolerance=TOLERANCE, stop_reason=GUARD),
               score_answer(made_up, "I don't know of a Zephyr GT.", tolerance=TOLERANCE),
               score_answer(real, "I don't have verified figures for that car.", tolerance=TOLERANCE),
               score_answer(real, "It makes 250 hp.", tolerance=TOLERANCE)]
    assert results[0]["guard"] and results[0]["refused"] and results[0]["verdict"] == "correct"
    summary = aggregate(results, cases)
    assert summary["guard_refusal_rate"] == 0.25
    assert summary["correct_refusal_rate"] == 1.0       # both made-up questions refused
    assert summary["model_correct_refusal_rate"] == 0.5  # one of them by the model itself
    assert summary["false_refusal_rate"] == 0.5          # one real question refused
    assert summary["refusal_rate"] == 0.75
    assert summary["hallucination_rate"] == 0.25         # "250 hp" for a 203 hp Camry, of 4 judged answers
    assert summary["n_guard"] == 1
    assert summary["clean_stop_rate"] == 1.0 and summary["mean_length"] is not None  # generated answers only


def test_sides_are_parsed_defaulted_and_paired():
    assert parse_sides("tuned_rag,base_rag") == ("base_rag", "tuned_rag")
    assert parse_sides("all") == ("base_closed", "base_rag", "tuned_closed", "tuned_rag")
    assert parse_sides("tuned-rag") == ("tuned_rag",)
    with pytest.raises(UserError, match="unknown evaluation side"):
        parse_sides("tuned,rag")
    assert default_sides(True, True) == ("base_closed", "base_rag", "tuned_closed", "tuned_rag")
    assert default_sides(False, True) == ("base_closed", "tuned_closed")
    assert default_sides(True, False) == ("tuned_closed", "tuned_rag")
    assert headline_side(["base_closed", "tuned_closed", "tuned_rag"]) == "tuned_rag"
    assert baseline_side(["base_closed", "base_rag", "tuned_rag"], "tuned_rag") == "base_rag"
    assert baseline_side(["base_closed", "tuned_rag"], "tuned_rag") == "base_closed"
    config = Config()
    assert choose_sides(config) == ("base_closed", "base_rag", "tuned_closed", "tuned_rag")
    assert choose_sides(config, compare_base=False) == ("tuned_closed", "tuned_rag")  # --no-base
    assert choose_sides(config, ["base_rag", "tuned_rag"], compare_base=False) == ("tuned_rag",)
    config.retrieval.enabled = False
    assert choose_sides(config) == ("base_closed", "tuned_closed")
    with pytest.raises(UserError, match="no side left"):
        choose_sides(config, ["base_rag"], compare_base=False)


def test_the_builtin_reference_answers_state_no_hallucinated_figure(knowledge):
    """The generator's own answers are grounded in the store: the detector finds nothing in them (no false
    alarms from model names, prices per gallon, differences, question numbers or other units)."""
    from carexpert.dataset import build_builtin
    from carexpert.evaluation.data import eval_cases

    cases = eval_cases(build_builtin().splits["test"], knowledge=knowledge)
    judged = [(case, halluc(case, case.reference_text)) for case in cases]
    assert sum(found is not None for _, found in judged) > 100  # most spec, comparison and made-up questions
    assert [(case.id, found) for case, found in judged if found] == []
