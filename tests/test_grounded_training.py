"""A short CPU run on the tiny model with retrieval on: the examples it trains on carry their passages."""

from __future__ import annotations

from carexpert.dataset.pipeline import training_data_from_config
from carexpert.modeling.load import load_tokenizer
from carexpert.runs.paths import RunPaths
from carexpert.training import run
from tests.training_support import tiny_config, write_tiny_dataset


def grounded_config(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, write_tiny_dataset(tmp_path / "data.jsonl"), max_steps=2, save_steps=2,
                         eval_steps=0)
    config.data.dataset = "builtin"
    config.data.num_examples = 100
    config.data.data_dir = str(tmp_path / "data")
    config.data.max_length = 1024
    config.retrieval.enabled = True
    config.retrieval.top_k = 2
    config.retrieval.max_context_tokens = 160
    return config


def test_training_examples_hold_the_retrieved_passages_and_a_run_finishes(tiny_model_dir, tmp_path):
    config = grounded_config(tiny_model_dir, tmp_path)
    tokenizer = load_tokenizer(config)
    prepared = training_data_from_config(config, tokenizer)
    records = prepared.built.splits["train"]
    assert all("grounding" in r for r in records)
    with_context = [r for r in records if r["context"]]
    assert len(with_context) >= 0.9 * len(records)
    first = tokenizer.decode(prepared.datasets["train"][0]["input_ids"])
    assert "### Context:" in first and "### Instruction:" in first

    outcome = run(config, RunPaths(tmp_path / "runs" / "grounded"))
    assert outcome.state == "finished" and outcome.step == 2
