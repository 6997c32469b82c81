"""Base vs tuned on the tiny model with a real LoRA adapter: answers differ, results are valid."""

from __future__ import annotations

import threading

import pytest

from carexpert.evaluation.generate import EvaluationCancelled, build_prompts, generate_answers
from carexpert.evaluation.results import ITEM_KEYS, SIDE_KEYS, SUMMARY_KEYS, list_results, load_results
from carexpert.evaluation.runner import EvalData, evaluate_run
from eval_fixtures import CASES, VALIDATION, load_tiny_with_adapter, make_adapter_run, tokenize


@pytest.fixture(scope="module")
def adapter_run(tiny_model_dir, tmp_path_factory):
    return make_adapter_run(tiny_model_dir, tmp_path_factory.mktemp("runs"))


def test_base_and_tuned_answers_differ_and_results_are_valid(adapter_run):
    run, config = adapter_run
    phases = []
    data = EvalData(cases=list(CASES), validation=VALIDATION, tokenize=tokenize, fingerprint="abc123")
    outcome = evaluate_run(config, run, data=data, loader=load_tiny_with_adapter,
                           progress=lambda phase, done, total: phases.append((phase, done, total)))

    assert outcome.path.parent == run.eval
    assert {"load", "tuned", "base", "val_loss_tuned", "val_loss_base"} <= {p for p, _, _ in phases}
    assert ("tuned", len(CASES), len(CASES)) in phases
    items = outcome.items
    assert [i["id"] for i in items] == ["s1", "e1", "r1"]
    answers = [(i["base_answer"], i["tuned_answer"]) for i in items]
    assert any(base != tuned for base, tuned in answers), answers
    summary = outcome.summary
    assert summary["val_loss"]["base"] != summary["val_loss"]["tuned"]
    assert summary["perplexity"]["tuned"] > 1.0
    assert summary["dataset_fingerprint"] == "abc123"
    assert summary["model"] == config.model.base_model

    loaded = load_results(outcome.path)
    assert set(SUMMARY_KEYS) <= set(loaded.summary)
    assert set(loaded.summary["categories"]) == {"specs", "engines"}
    assert loaded.summary["categories"]["specs"]["n"] == 2
    for side in ("base", "tuned"):
        assert set(SIDE_KEYS) <= set(loaded.summary["overall"][side])
    for item in loaded.items:
        assert set(ITEM_KEYS) <= set(item)
        for side in ("base", "tuned"):
            assert item[side]["verdict"] in {"correct", "partial", "wrong", "refused", "empty", "unscored"}
            assert item[side]["stop_reason"] in {"eos", "stop_string", "length"}
            assert 0 < item[side]["length_tokens"] <= config.eval.max_new_tokens
    assert list_results(run) == [outcome.path]


def test_no_base_leaves_base_entries_null(adapter_run):
    run, config = adapter_run
    data = EvalData(cases=list(CASES[:1]))
    outcome = evaluate_run(config, run, data=data, loader=load_tiny_with_adapter, compare_base=False)
    assert outcome.summary["overall"]["base"] is None
    assert outcome.summary["categories"]["specs"]["base"] is None
    assert outcome.summary["val_loss"] == {"base": None, "tuned": None}
    assert outcome.items[0]["base"] is None and outcome.items[0]["base_answer"] is None
    assert outcome.items[0]["tuned"]["score"] is not None


def test_batched_left_padded_generation_matches_one_at_a_time(adapter_run):
    run, config = adapter_run
    model, tokenizer = load_tiny_with_adapter(config, run.adapter)
    side = tokenizer.padding_side
    prompts = build_prompts([(c.question, "") for c in CASES], system=None)
    batched = generate_answers(model, tokenizer, prompts, max_new_tokens=8, batch_size=3)
    single = generate_answers(model, tokenizer, prompts, max_new_tokens=8, batch_size=1)
    assert [g.text for g in batched] == [g.text for g in single]
    assert tokenizer.padding_side == side  # restored for whoever uses the tokenizer next


def test_cancel_event_stops_generation(adapter_run):
    run, config = adapter_run
    model, tokenizer = load_tiny_with_adapter(config, run.adapter)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(EvaluationCancelled):
        generate_answers(model, tokenizer, ["a", "b"], max_new_tokens=4, batch_size=1, cancel=cancel)


def test_validation_loss_matches_the_models_own_loss(adapter_run):
    """Token-weighted answer loss equals the model's mean loss when computed one example at a time."""
    import torch

    from carexpert.evaluation.loss import answer_loss

    run, config = adapter_run
    model, tokenizer = load_tiny_with_adapter(config, run.adapter)
    examples = [tokenize(tokenizer, record, 256) for record in VALIDATION]
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example["input_ids"]])
            labels = torch.tensor([example["labels"]])
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    batched = answer_loss(model, tokenizer, VALIDATION, tokenize=tokenize, max_length=256, batch_size=2)
    assert batched == pytest.approx(total / count, rel=1e-4)


def test_results_say_whether_the_data_is_what_the_run_trained_on(adapter_run):
    from carexpert.fsutil import atomic_write_json

    run, config = adapter_run
    marker = run.checkpoints / "checkpoint-4" / "carexpert-checkpoint.json"
    atomic_write_json(marker, {"step": 4, "dataset_fingerprint": "abc123"})
    try:
        same = evaluate_run(config, run, data=EvalData(cases=list(CASES[:1]), fingerprint="abc123"),
                            loader=load_tiny_with_adapter, compare_base=False)
        changed = evaluate_run(config, run, data=EvalData(cases=list(CASES[:1]), fingerprint="def456"),
                               loader=load_tiny_with_adapter, compare_base=False)
    finally:
        marker.unlink()
        marker.parent.rmdir()
    assert same.summary["training_fingerprint"] == "abc123" and same.summary["data_matches_training"] is True
    assert changed.summary["data_matches_training"] is False


def test_rescoring_saved_answers_reproduces_the_scores(adapter_run):
    from carexpert.evaluation.rescore import rescore_results

    run, config = adapter_run
    data = EvalData(cases=list(CASES), validation=VALIDATION, tokenize=tokenize, fingerprint="abc123")
    outcome = evaluate_run(config, run, data=data, loader=load_tiny_with_adapter)
    again = rescore_results(outcome.path)
    assert again.path != outcome.path and again.summary["rescored_from"] == outcome.path.name
    assert again.items == outcome.items
    for key in ("categories", "overall", "holdouts", "val_loss", "perplexity", "dataset_fingerprint"):
        assert again.summary[key] == outcome.summary[key]
