"""Four sides on the tiny model with a real LoRA adapter and a fake retriever: answers differ,
the guard answers made-up models on the retrieval sides, results are valid."""

from __future__ import annotations

import threading

import pytest
from eval_fixtures import (
    ACCORD,
    CAMRY,
    CASES,
    VALIDATION,
    FakeRetriever,
    load_tiny_with_adapter,
    make_adapter_run,
    tokenize,
)

from carexpert.evaluation.generate import EvaluationCancelled, build_prompts, generate_answers
from carexpert.evaluation.results import ITEM_KEYS, SIDE_KEYS, SUMMARY_KEYS, load_results
from carexpert.evaluation.runner import EvalData, evaluate_run
from carexpert.evaluation.sides import SIDE_NAMES
from carexpert.retrieval import guard_refusal
from carexpert.runs.artifacts import eval_results


@pytest.fixture(scope="module")
def adapter_run(tiny_model_dir, tmp_path_factory):
    return make_adapter_run(tiny_model_dir, tmp_path_factory.mktemp("runs"))


def test_four_sides_answer_and_results_are_valid(adapter_run):
    run, config = adapter_run
    phases = []
    retriever = FakeRetriever()
    data = EvalData(cases=list(CASES), validation=VALIDATION, tokenize=tokenize, fingerprint="abc123")
    outcome = evaluate_run(config, run, data=data, loader=load_tiny_with_adapter, retriever=retriever,
                           progress=lambda phase, done, total: phases.append((phase, done, total)))

    assert outcome.path.parent == run.eval
    assert {"load", "retrieve", *SIDE_NAMES, "val_loss_tuned", "val_loss_base"} <= {p for p, _, _ in phases}
    assert ("tuned_closed", len(CASES), len(CASES)) in phases
    assert ("tuned_rag", len(CASES) - 1, len(CASES) - 1) in phases  # the guard answered the made-up model
    assert len(retriever.questions) == len(CASES)  # one retrieval per question, shared by both models
    items = outcome.items
    assert [i["id"] for i in items] == ["s1", "e1", "r1"]
    closed = [(i["base_closed_answer"], i["tuned_closed_answer"]) for i in items]
    assert any(base != tuned for base, tuned in closed), closed
    assert any(i["tuned_rag_answer"] != i["tuned_closed_answer"] for i in items[:2])  # the passages are read
    summary = outcome.summary
    assert summary["version"] == 2 and summary["sides"] == list(SIDE_NAMES)
    assert summary["val_loss"]["base"] != summary["val_loss"]["tuned"]
    assert summary["perplexity"]["tuned"] > 1.0
    assert summary["dataset_fingerprint"] == "abc123"
    assert summary["model"] == config.model.base_model
    assert {f"{side}_s" for side in SIDE_NAMES} | {"load_s", "retrieval_s", "total_s"} == set(summary["timings"])

    camry, zephyr = items[0], items[2]
    assert [(h["id"], h["how"]) for h in camry["retrieved"]] == [(CAMRY.id, "entity"), (ACCORD.id, "text")]
    assert camry["retrieved"][0]["text"] == CAMRY.text and camry["unknown"] is None
    refusal = guard_refusal("Toyota Zephyrion GT", (CAMRY, ACCORD))
    assert zephyr["unknown"] == "Toyota Zephyrion GT"
    for side in ("base_rag", "tuned_rag"):
        assert zephyr[f"{side}_answer"] == refusal
        assert zephyr[side]["guard"] is True and zephyr[side]["verdict"] == "correct"
        assert zephyr[side]["clean_stop"] is None and zephyr[side]["length_tokens"] is None
        assert zephyr[side]["used"] == []  # the guard's words come from no passage
        assert summary["overall"][side]["guard_refusal_rate"] == pytest.approx(1 / 3, abs=1e-3)
        assert summary["overall"][side]["correct_refusal_rate"] == 1.0
        assert summary["overall"][side]["model_correct_refusal_rate"] == 0.0  # the guard did it, not the model
        assert "used" in camry[side]
    for side in ("base_closed", "tuned_closed"):
        assert zephyr[side]["guard"] is False and zephyr[f"{side}_answer"] != refusal
        assert summary["overall"][side]["guard_refusal_rate"] == 0.0 and "used" not in camry[side]

    loaded = load_results(outcome.path)
    assert set(SUMMARY_KEYS) <= set(loaded.summary)
    assert set(loaded.summary["categories"]) == {"specs", "engines"}
    assert loaded.summary["categories"]["specs"]["n"] == 2
    for side in SIDE_NAMES:
        assert set(SIDE_KEYS) <= set(loaded.summary["overall"][side])
    for item in loaded.items:
        assert set(ITEM_KEYS) <= set(item)
        for side in SIDE_NAMES:
            assert item[side]["verdict"] in {"correct", "partial", "wrong", "refused", "empty", "unscored"}
            assert item[side]["stop_reason"] in {"eos", "stop_string", "length", "guard"}
            if not item[side]["guard"]:
                assert 0 < item[side]["length_tokens"] <= config.eval.max_new_tokens
    assert eval_results(run) == [outcome.path]


def test_no_base_leaves_base_entries_null(adapter_run):
    run, config = adapter_run
    data = EvalData(cases=list(CASES[:1]))
    outcome = evaluate_run(config, run, data=data, loader=load_tiny_with_adapter, compare_base=False,
                           retriever=FakeRetriever())
    assert outcome.summary["sides"] == ["tuned_closed", "tuned_rag"]
    for side in ("base_closed", "base_rag"):
        assert outcome.summary["overall"][side] is None
        assert outcome.summary["categories"]["specs"][side] is None
        assert outcome.items[0][side] is None and outcome.items[0][f"{side}_answer"] is None
    assert outcome.summary["val_loss"] == {"base": None, "tuned": None}
    assert outcome.items[0]["tuned_closed"]["score"] is not None


def test_sides_follow_retrieval_enabled_and_can_be_named(adapter_run):
    run, config = adapter_run
    data = EvalData(cases=list(CASES))
    closed = config.__class__(**{**config.__dict__})
    closed.retrieval = type(config.retrieval)(enabled=False)
    outcome = evaluate_run(closed, run, data=data, loader=load_tiny_with_adapter)  # no retriever needed
    assert outcome.summary["sides"] == ["base_closed", "tuned_closed"]
    assert all(item["retrieved"] is None for item in outcome.items)
    retriever = FakeRetriever()
    named = evaluate_run(closed, run, data=data, loader=load_tiny_with_adapter, sides=["tuned_rag"],
                         retriever=retriever)
    assert named.summary["sides"] == ["tuned_rag"] and len(retriever.questions) == len(CASES)
    assert named.summary["val_loss"]["base"] is None


def test_guard_off_lets_the_model_answer(adapter_run):
    run, config = adapter_run
    unguarded = config.__class__(**{**config.__dict__})
    unguarded.retrieval = type(config.retrieval)(guard=False)
    outcome = evaluate_run(unguarded, run, data=EvalData(cases=list(CASES)), loader=load_tiny_with_adapter,
                           sides=["tuned_rag"], retriever=FakeRetriever())
    zephyr = outcome.items[2]
    assert zephyr["unknown"] == "Toyota Zephyrion GT"  # still recorded
    assert zephyr["tuned_rag"]["guard"] is False and zephyr["tuned_rag"]["stop_reason"] != "guard"
    assert outcome.summary["overall"]["tuned_rag"]["guard_refusal_rate"] == 0.0


def test_retrieval_prompts_are_the_shared_prompt_with_context():
    from carexpert.dataset.tokenization import prompt_for

    prompts = build_prompts([("Camry hp?", "")], "system line", [[CAMRY.text, ACCORD.text]])
    assert prompts[0] == prompt_for({"instruction": "Camry hp?", "system": "system line",
                                     "context": [CAMRY.text, ACCORD.text]})
    assert "### Context:\n[1] 2024 Toyota Camry LE" in prompts[0] and "[2] 2023 Honda Accord LX" in prompts[0]
    assert "### Context:" not in build_prompts([("Camry hp?", "")], "system line")[0]


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
                            loader=load_tiny_with_adapter, sides=["tuned_closed"])
        changed = evaluate_run(config, run, data=EvalData(cases=list(CASES[:1]), fingerprint="def456"),
                               loader=load_tiny_with_adapter, sides=["tuned_closed"])
    finally:
        marker.unlink()
        marker.parent.rmdir()
    assert same.summary["training_fingerprint"] == "abc123" and same.summary["data_matches_training"] is True
    assert changed.summary["data_matches_training"] is False


def test_rescoring_saved_answers_reproduces_the_scores(adapter_run):
    from carexpert.evaluation.rescore import rescore_results

    run, config = adapter_run
    data = EvalData(cases=list(CASES), validation=VALIDATION, tokenize=tokenize, fingerprint="abc123")
    outcome = evaluate_run(config, run, data=data, loader=load_tiny_with_adapter, retriever=FakeRetriever())
    again = rescore_results(outcome.path)
    assert again.path != outcome.path and again.summary["rescored_from"] == outcome.path.name
    assert again.items == outcome.items
    for key in ("categories", "overall", "holdouts", "val_loss", "perplexity", "dataset_fingerprint"):
        assert again.summary[key] == outcome.summary[key]


def test_a_row_is_done_at_eos_or_a_new_turn_and_stays_done(adapter_run):
    """generate ends a batch when the criterion says every row is done; done rows are not decoded again."""
    import torch

    from carexpert.evaluation.generate import _make_stopper, length_order, resolve_batch_size

    run, config = adapter_run
    _, tokenizer = load_tiny_with_adapter(config, run.adapter)
    eos = tokenizer.eos_token_id
    turn = tokenizer("\n### Instruction:", add_special_tokens=False)["input_ids"]
    stop = _make_stopper(tokenizer, 2, {eos}, ["\n### Instruction:"], None)
    prompt = [[5, 6]] * 3
    first = torch.tensor([p + [t] for p, t in zip(prompt, [eos, 7, 7])])
    assert stop(first, None).tolist() == [True, False, False]
    ids = torch.cat([first, torch.tensor([[0], [8], [8]])], dim=1)
    assert stop(ids, None).tolist() == [True, False, False]  # row 0 stays done after EOS
    tail = torch.tensor([turn] * 3)
    ids = torch.cat([ids, tail], dim=1)
    assert stop(ids, None).tolist() == [True, True, True]  # a new turn ends the others: the batch stops
    assert length_order(tokenizer, ["a", "a much longer prompt than the first", "mid size one"]) == [1, 2, 0]
    assert resolve_batch_size(0, torch.device("cpu")) == 16 and resolve_batch_size(0, torch.device("cuda")) == 512
    assert resolve_batch_size(64, torch.device("cpu")) == 64


def test_auto_batch_on_a_gpu_holds_the_whole_builtin_test_set():
    """The base model loops to the token limit, so each batch of a base side costs a full pass: the
    360 held-out questions in one batch make one pass per side instead of two (the 5-minute target)."""
    import torch

    from carexpert.config import Config
    from carexpert.dataset import build_from_config
    from carexpert.evaluation.generate import resolve_batch_size

    held_out = len(build_from_config(Config()).splits["test"])
    assert 300 <= held_out <= resolve_batch_size(0, torch.device("cuda"))
