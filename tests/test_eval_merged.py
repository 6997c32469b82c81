"""Tuned sides with the adapter merged into the weights: the same answers as unmerged, the base sides
first and untouched, the adapter unmerged afterwards whatever happens, a quantized base left alone."""

from __future__ import annotations

import threading

import pytest
from eval_fixtures import CASES, VALIDATION, FakeRetriever, load_tiny_with_adapter, make_adapter_run, tokenize

from carexpert.evaluation import runner
from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.generate import EvaluationCancelled, build_prompts, generate_answers
from carexpert.evaluation.runner import EvalData, adapter_merged, base_weights, evaluate_model, tuned_weights
from carexpert.evaluation.sides import SIDE_NAMES

QUESTIONS = [(c.question, c.input) for c in CASES] + [("Which is quicker, the Camry or the Accord?", ""),
                                                      ("When should I change synthetic oil?", "")]


@pytest.fixture(scope="module")
def adapter_run(tiny_model_dir, tmp_path_factory):
    return make_adapter_run(tiny_model_dir, tmp_path_factory.mktemp("runs"))


@pytest.fixture
def loaded(adapter_run):
    run, config = adapter_run
    model, tokenizer = load_tiny_with_adapter(config, run.adapter)
    return model.eval(), tokenizer, config


def weights_of(model) -> dict:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def test_merged_tuned_answers_and_logits_equal_unmerged(loaded):
    import torch

    model, tokenizer, _ = loaded
    prompts = build_prompts(QUESTIONS, system=None)
    unmerged = generate_answers(model, tokenizer, prompts, max_new_tokens=24, batch_size=3)
    encoded = tokenizer(prompts[:1], return_tensors="pt")
    with torch.no_grad():
        logits_unmerged = model(**encoded).logits
    with tuned_weights(model) as how:
        assert how == "merged" and adapter_merged(model)
        merged = generate_answers(model, tokenizer, prompts, max_new_tokens=24, batch_size=3)
        with torch.no_grad():
            logits_merged = model(**encoded).logits
    assert not adapter_merged(model)
    assert [g.text for g in merged] == [g.text for g in unmerged]
    assert [g.stop_reason for g in merged] == [g.stop_reason for g in unmerged]
    torch.testing.assert_close(logits_merged, logits_unmerged, rtol=1e-4, atol=1e-4)
    with base_weights(model), torch.no_grad():  # the adapter does change the answers: the check can fail
        assert not torch.allclose(model(**encoded).logits, logits_unmerged, atol=1e-3)


def test_base_sides_run_first_unmerged_and_the_weights_come_back(loaded):
    model, tokenizer, config = loaded
    before = weights_of(model)
    prompts = build_prompts(QUESTIONS, config.chat.system_prompt)  # as evaluate_model builds them
    with base_weights(model):
        expected_base = generate_answers(model, tokenizer, prompts, max_new_tokens=config.eval.max_new_tokens,
                                         batch_size=2)
    expected_tuned = generate_answers(model, tokenizer, prompts, max_new_tokens=config.eval.max_new_tokens,
                                      batch_size=2)
    phases = []
    cases = [EvalCase(id=f"q{i}", category="specs", question=q) for i, (q, _) in enumerate(QUESTIONS)]
    data = EvalData(cases=cases, validation=VALIDATION, tokenize=tokenize)

    def progress(phase, done, total):
        phases.append((phase, adapter_merged(model)))

    summary, items = evaluate_model(model, tokenizer, data, config, sides=["base_closed", "tuned_closed"],
                                    progress=progress)
    assert [item["base_closed_answer"] for item in items] == [g.text for g in expected_base]
    assert [item["tuned_closed_answer"] for item in items] == [g.text for g in expected_tuned]
    assert summary["tuned_weights"] == "merged"
    order = [phase for phase, _ in phases]
    assert order.index("base_closed") < order.index("val_loss_base") < order.index("tuned_closed") \
        < order.index("val_loss_tuned")
    assert all(merged == ("tuned" in phase) for phase, merged in phases)
    after = weights_of(model)
    assert not adapter_merged(model)
    assert all(before[name].equal(after[name]) or before[name].allclose(after[name], atol=1e-6) for name in before)


def test_a_cancel_while_merged_unmerges(loaded):
    model, tokenizer, config = loaded
    cancel = threading.Event()
    seen = []

    def progress(phase, done, total):
        if phase.startswith("tuned"):
            seen.append(adapter_merged(model))
            cancel.set()

    data = EvalData(cases=list(CASES))
    with pytest.raises(EvaluationCancelled):
        evaluate_model(model, tokenizer, data, config, sides=SIDE_NAMES, retriever=FakeRetriever(),
                       progress=progress, cancel=cancel)
    assert seen and seen[0] is True and not adapter_merged(model)


def test_an_error_while_merged_unmerges_and_base_weights_refuse_a_merged_model(loaded):
    model, _, _ = loaded
    with pytest.raises(ZeroDivisionError), tuned_weights(model):
        assert adapter_merged(model)
        with pytest.raises(RuntimeError, match="merged"):
            base_weights(model)
        raise ZeroDivisionError
    assert not adapter_merged(model)


def test_a_quantized_base_keeps_the_adapter_unmerged(loaded, monkeypatch):
    model, _, _ = loaded
    monkeypatch.setattr(runner, "quantized_base", lambda m: True)
    with tuned_weights(model) as how:
        assert how == "unmerged" and not adapter_merged(model)


def test_a_model_without_lora_layers_answers_as_loaded(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with tuned_weights(plain) as how:
        assert how == "as loaded"
