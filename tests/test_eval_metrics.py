"""Scoring hand-written answers: right, wrong, other units, hedged, refused, rambling, truncated."""

from __future__ import annotations

import pytest

from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.concepts import concept_coverage
from carexpert.evaluation.metrics import (
    aggregate,
    is_refusal,
    numeric_accuracy,
    repetition_rate,
    score_answer,
)

TOL = 0.03
CAMRY = EvalCase(id="camry", category="specs", question="How much power and torque does the 2024 Camry make?",
                 reference={"hp": 203, "torque_lb_ft": 184, "torque_nm": 249})
ZERO_TO_SIXTY = EvalCase(id="z", category="specs", question="How quick is the Mustang GT from 0 to 60?",
                         reference={"zero_to_sixty_s": 4.3})
TURBO = EvalCase(id="turbo", category="engines", question="Turbo or supercharger?",
                 key_terms=["exhaust gas", "turbine", "crankshaft", "turbo lag"])
MADE_UP = EvalCase(id="fake", category="specs", question="How much horsepower does the Toyota Zephyrion GT make?",
                   expect_refusal=True)


def score(case, answer, **kwargs):
    return score_answer(case, answer, tolerance=TOL, **kwargs)


def test_right_answer_is_correct():
    result = score(CAMRY, "The 2024 Camry's 2.5-liter four makes 203 hp and 184 lb-ft of torque.")
    assert (result["verdict"], result["score"]) == ("correct", 1.0)
    assert result["numeric_detail"] == {"hp": "right", "torque_lb_ft": "right", "torque_nm": "right"}


def test_wrong_numbers_are_wrong():
    result = score(CAMRY, "The Camry makes 301 horsepower and 267 lb-ft.")
    assert (result["verdict"], result["score"]) == ("wrong", 0.0)


def test_right_numbers_in_other_units_count():
    result = score(CAMRY, "It puts out 151 kW and 250 N·m.")
    assert result["verdict"] == "correct" and result["numeric_accuracy"] == 1.0


def test_restating_in_two_units_is_one_claim():
    assert score(CAMRY, "203 hp (151 kW) and 184 lb-ft (249 Nm).")["score"] == 1.0


def test_hedged_answer_gets_half_credit_for_the_hedged_fact():
    accuracy, detail = numeric_accuracy({"hp": 203}, "Somewhere around 180 hp, maybe 203 hp.", TOL)
    assert accuracy == 0.5 and detail == {"hp": "hedged"}
    accuracy, _ = numeric_accuracy({"hp": 203}, "Between 150 hp and 250 hp.", TOL)
    assert accuracy == 0.5


def test_first_claim_is_the_answer():
    accuracy, _ = numeric_accuracy({"hp": 203}, "It makes 203 hp, up from 178 hp before.", TOL)
    assert accuracy == 1.0


def test_two_facts_of_one_family_are_both_claims():
    reference = {"mpg_city": 28, "mpg_highway": 39}
    assert numeric_accuracy(reference, "28 mpg city and 39 mpg highway.", TOL)[0] == 1.0
    assert numeric_accuracy(reference, "25 mpg city and 30 mpg highway; some say 28 and 39 mpg.", TOL)[0] == 0.5
    assert numeric_accuracy(reference, "39 mpg highway and 28 mpg city.", TOL)[0] == 1.0


def test_time_and_sprint_name_are_told_apart():
    assert score(ZERO_TO_SIXTY, "It runs 0-60 mph in 4.3 seconds.")["score"] == 1.0
    assert score(ZERO_TO_SIXTY, "0 to 60 in 4.3.")["score"] == 1.0
    assert score(ZERO_TO_SIXTY, "It does 0-60 mph in 5.5 seconds.")["score"] == 0.0


def test_bare_number_without_unit_counts_but_years_do_not():
    accuracy, detail = numeric_accuracy({"hp": 203}, "The 2024 Camry makes 203.", TOL)
    assert accuracy == 1.0 and detail == {"hp": "right_no_unit"}
    assert numeric_accuracy({"hp": 2024}, "The 2024 Camry.", TOL)[0] == 1.0  # a year-sized reference
    assert numeric_accuracy({"hp": 203}, "The 2024 Camry is great.", TOL)[0] == 0.0


def test_tolerance_is_relative():
    assert numeric_accuracy({"msrp_usd": 28400}, "It starts at about $28,000.", TOL)[0] == 1.0
    assert numeric_accuracy({"msrp_usd": 28400}, "It starts at $26,000.", TOL)[0] == 0.0
    assert numeric_accuracy({"msrp_usd": 28400}, "Roughly $28.4k.", TOL)[0] == 1.0


def test_concept_coverage_uses_stems_and_synonyms():
    answer = ("A turbo is spun by exhaust gases driving a turbine; a supercharger is belt-driven "
              "off the crank, so it has no lag.")
    coverage, found, missing = concept_coverage(TURBO.key_terms, answer)
    assert found == ["exhaust gas", "turbine", "crankshaft", "turbo lag"] and coverage == 1.0 and not missing
    assert concept_coverage(["regenerative braking|regen"], "Regen slows the car.")[0] == 1.0
    assert concept_coverage(["turbine"], "Both add power.")[0] == 0.0


def test_partial_coverage_is_partial():
    result = score(TURBO, "A turbocharger uses exhaust gas to spin a turbine.")
    assert result["verdict"] == "partial" and result["concept_coverage"] == 0.5
    assert result["terms_missing"] == ["crankshaft", "turbo lag"]


@pytest.mark.parametrize("answer", [
    "I'm not aware of a Toyota Zephyrion GT; Toyota has never sold a model by that name.",
    "I don't have any information about that car.",
    "There is no such model in Toyota's lineup.",
    "The Zephyrion GT doesn't exist, as far as I know.",
])
def test_correct_refusals(answer):
    assert is_refusal(answer)
    result = score(MADE_UP, answer)
    assert (result["verdict"], result["score"], result["refused"]) == ("correct", 1.0, True)


def test_inventing_specs_for_a_made_up_model_is_wrong():
    result = score(MADE_UP, "The Toyota Zephyrion GT makes 310 hp from a twin-turbo V6.")
    assert (result["verdict"], result["score"], result["refused"]) == ("wrong", 0.0, False)
    hedged = score(MADE_UP, "I'm not sure, but it probably makes about 300 hp.")
    assert hedged["verdict"] == "partial" and hedged["score"] == 0.5


def test_refusing_a_real_question_scores_zero():
    result = score(CAMRY, "I don't know that car.")
    assert (result["verdict"], result["score"], result["refused"]) == ("refused", 0.0, True)


def test_a_refusal_deep_in_a_long_answer_is_not_a_refusal():
    answer = "The Camry makes 203 hp. " * 12 + "There is no such thing as a free lunch."
    assert not is_refusal(answer)


def test_rambling_repetitive_answer_is_measured():
    loop = "The Camry is a great car. " * 10
    result = score(CAMRY, loop, stop_reason="length", n_tokens=200)
    assert result["repetition_rate"] > 0.7 and result["verdict"] == "wrong"
    assert repetition_rate("A turbo uses exhaust gas, a supercharger uses a belt from the crankshaft.") == 0.0


def test_truncated_answer_is_not_a_clean_stop():
    result = score(CAMRY, "The Camry makes 20", stop_reason="length", n_tokens=200)
    assert result["clean_stop"] is False and result["score"] == 0.0 and result["length_tokens"] == 200
    assert score(CAMRY, "203 hp, 184 lb-ft.", stop_reason="eos", n_tokens=9)["clean_stop"] is True
    assert score(CAMRY, "203 hp, 184 lb-ft.", stop_reason="stop_string")["clean_stop"] is False


def test_empty_answer():
    assert score(CAMRY, "   ")["verdict"] == "empty"


def test_free_text_reference_of_a_user_case():
    case = EvalCase(id="u", category="user", question="Camry power?", reference_text="It makes 203 hp.")
    assert score(case, "About 151 kW.")["score"] == 1.0
    words = EvalCase(id="w", category="user", question="Why rotate tires?",
                     reference_text="Rotating tires evens out tread wear.")
    assert score(words, "Rotation evens out tread wear on the tires.")["score"] == 1.0
    assert score(words, "It evens things.")["verdict"] == "partial"
    assert score(EvalCase(id="q", category="user", question="Hi?"), "Hello")["verdict"] == "unscored"


def test_aggregate_rates():
    cases = [CAMRY, TURBO, MADE_UP]
    results = [score(CAMRY, "203 hp and 184 lb-ft.", stop_reason="eos", n_tokens=10),
               score(TURBO, "It uses exhaust gas.", stop_reason="length", n_tokens=20),
               score(MADE_UP, "No such model exists.", stop_reason="eos", n_tokens=6)]
    summary = aggregate(results, cases)
    assert summary["score"] == pytest.approx((1.0 + 0.25 + 1.0) / 3, abs=1e-3)
    assert summary["correct_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert summary["numeric_accuracy"] == 1.0 and summary["concept_coverage"] == 0.25
    assert summary["refusal_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["correct_refusal_rate"] == 1.0
    assert summary["clean_stop_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert summary["mean_length"] == 12.0


@pytest.mark.parametrize("answer", [
    "There's no Toyota Corvana that I know of, so I can't tell you its horsepower.",
    "Toyota Corvana isn't a vehicle I know of, so I can't provide its horsepower.",
    "I don't recognize Zentra as a car manufacturer, and I have no record of a Volo.",
    "I'm not familiar with a carmaker called Zentra or a model named the Volo.",
])
def test_refusal_phrasings_of_the_training_data(answer):
    assert is_refusal(answer)


def test_comparison_keeps_two_cars_apart():
    reference = {"toyota_camry_2024_le_hp": 203, "toyota_camry_2024_le_power_kw": 151,
                 "honda_accord_2023_lx_hp": 192, "honda_accord_2023_lx_power_kw": 143}
    answer = "The Camry has 203 hp (151 kW) while the Accord has 192 hp."
    accuracy, detail = numeric_accuracy(reference, answer, TOL)
    assert accuracy == 1.0 and set(detail.values()) == {"right"}
    accuracy, detail = numeric_accuracy(reference, "Both make about 203 hp.", TOL)
    assert accuracy == 0.5 and detail["honda_accord_2023_lx_hp"] == "wrong"


def test_an_interval_asked_as_two_facts():
    reference = {"interval_low_miles": 5000, "interval_high_miles": 10000}
    assert numeric_accuracy(reference, "Every 5,000 to 10,000 miles, or once a year.", TOL)[0] == 1.0
    assert numeric_accuracy(reference, "Every 5,000 miles at most.", TOL)[0] == 0.5
    assert numeric_accuracy(reference, "Every 3,000 to 5,000 miles.", TOL)[0] == 0.25


def test_numbers_given_in_the_question_do_not_compete():
    reference = {"annual_fuel_cost_usd": 865, "mpg": 52}
    answer = "At $3.00 per gallon and 52 mpg you would spend about $865 a year."
    assert numeric_accuracy(reference, answer, TOL, "Gas is $3.00 a gallon; what would it cost me?")[0] == 1.0
    assert numeric_accuracy(reference, answer, TOL, "What would it cost me?")[0] == 0.75


def test_refusing_a_made_up_car_while_citing_the_real_one():
    case = EvalCase(id="c", category="comparisons", question="Golf GTI or Volkswagen Arvento?",
                    reference={"mpg": 28}, expect_refusal=True)
    right = "I have no record of a Volkswagen Arvento. The 2022 Golf GTI S is rated at 28 mpg combined."
    assert score(case, right)["verdict"] == "correct"
    invented = "I have no record of a Volkswagen Arvento. The Arvento gets 40 mpg, the GTI 28 mpg."
    assert score(case, invented)["score"] == 0.5


def test_repeating_the_question_earns_no_concept_credit():
    case = EvalCase(id="cpo", category="buying", question="Should I buy a new, used, or certified pre-owned car?",
                    key_terms=["certified pre-owned", "depreciation", "vehicle history report"])
    echo = score(case, "You can buy a new, used, or certified pre-owned car.")
    assert echo["score"] == 0.0 and echo["terms_missing"] == ["depreciation", "vehicle history report"]
    assert score(case, "New cars lose the most to depreciation.")["concept_coverage"] == 0.5
    only_echo = EvalCase(id="fwd", category="advanced_tech", question="Name cars with front-wheel drive.",
                         reference_text="The Honda Civic and Toyota Corolla drive their front wheels.",
                         key_terms=["front wheels"])
    assert score(only_echo, "Front-wheel drive cars drive the front wheels.")["score"] == 0.0
    assert score(only_echo, "The Honda Civic and the Toyota Corolla.")["score"] > 0.5
