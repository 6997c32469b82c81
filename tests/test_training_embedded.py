"""The embedded Gemma 3 270M: packing is exact with its sliding-window layers, and QLoRA learns on the CPU."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from carexpert.config import Config
from carexpert.runs import RunPaths, read_events
from carexpert.training import run

pytestmark = pytest.mark.slow

FACTS = [("How much horsepower does the 2024 Toyota Camry make?", "The 2024 Toyota Camry makes 225 horsepower."),
         ("What does a turbocharger use to spin?", "A turbocharger is spun by the engine's exhaust gas.")]


def embedded_config(model_dir, dataset) -> Config:
    config = Config()
    config.model.base_model = str(model_dir)
    config.data.dataset = str(dataset)
    config.data.max_length = 96
    config.retrieval.enabled = False  # QLoRA mechanics on the real model; passages would not fit 96 tokens
    config.model.quantization = "nf4"  # QLoRA: the 7B recipe's 4-bit base (the embedded default is bf16)
    config.data.validation_fraction = 0.0
    config.data.test_fraction = 0.0
    config.lora.r = 8
    config.train.batch_size = 2
    config.train.grad_accum = 1
    config.train.max_steps = 4
    config.train.learning_rate = 1e-3
    config.train.warmup_ratio = 0.0
    config.train.lr_scheduler = "constant"
    config.train.save_steps = 100
    config.train.tensorboard = False
    return config


def test_packed_loss_equals_padded_loss_on_gemma(embedded_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from carexpert.dataset import tokenize_example
    from carexpert.modeling import load_tokenizer
    from carexpert.training.collate import make_collator

    config = embedded_config(embedded_model_dir, "unused")
    tokenizer = load_tokenizer(config)
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32,
                                                 attn_implementation="sdpa").eval()
    features = [tokenize_example(tokenizer, {"instruction": q, "input": "", "output": a}, 96) for q, a in FACTS]
    with torch.no_grad():
        packed = model(**make_collator(tokenizer, packed=True)(features), use_cache=False).loss
        padded = model(**make_collator(tokenizer, packed=False)(features), use_cache=False).loss
    torch.testing.assert_close(packed, padded, rtol=1e-4, atol=1e-4)


def test_qlora_on_the_embedded_model_lowers_the_loss(embedded_model_dir, tmp_path):
    dataset = tmp_path / "facts.jsonl"
    dataset.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n"
                               for q, a in FACTS * 2))
    paths = RunPaths(tmp_path / "gemma")
    outcome = run(embedded_config(embedded_model_dir, dataset), paths)
    assert outcome.state == "finished"
    events = read_events(paths.events)
    summary = next(e for e in events if e["type"] == "summary")
    assert summary["quantized_layers"] > 0 and summary["plan"]["selective_logits"] is True  # 4-bit base, QLoRA
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
