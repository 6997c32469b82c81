"""The memory/time estimate: parameter counts are exact, memory moves the right way."""

from __future__ import annotations

import pytest

from carexpert.config import Config
from carexpert.estimate import (
    compare_with_run,
    estimate,
    estimate_for_config,
    load_shape,
    lora_param_count,
    shape_from_config_json,
)

MISTRAL = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 32000}


def test_mistral_parameter_counts_match_the_published_size():
    shape = shape_from_config_json(MISTRAL)
    assert shape.total_params == 7_241_732_096 - 266_240  # published 7.24B minus RMSNorm weights
    # r=64 on q/k/v/o: per layer 64*(4096+4096) + 2*64*(4096+1024) + 64*(4096+4096)
    assert lora_param_count(shape, ["q_proj", "k_proj", "v_proj", "o_proj"], 64) == 32 * 64 * (8192 * 2 + 5120 * 2)


def test_tiny_model_counts_equal_torch(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    shape = load_shape(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    counted = sum(p.numel() for n, p in model.named_parameters() if "norm" not in n)
    assert shape.total_params == counted
    del torch


def test_memory_moves_the_right_way():
    shape = shape_from_config_json(MISTRAL)
    base = estimate(shape)
    assert estimate(shape, quantization="none").peak_bytes > base.peak_bytes
    assert estimate(shape, micro_batch=16).peak_bytes > base.peak_bytes
    assert estimate(shape, gradient_checkpointing=False).activation_bytes > base.activation_bytes
    assert estimate(shape, lora_r=8).adapter_bytes < base.adapter_bytes
    assert estimate(shape, selective_logits=False).logits_bytes > base.logits_bytes
    # QLoRA of a 7B model: a few GiB, as published (about 4 GiB of weights at NF4)
    assert 3.5 < base.weights_bytes / 2**30 < 4.2


def test_step_time_only_for_known_cards():
    shape = shape_from_config_json(MISTRAL)
    assert estimate(shape, gpu_name="NVIDIA H100 80GB HBM3").step_seconds > 0
    assert estimate(shape, gpu_name="Mystery GPU").step_seconds is None


def test_estimate_for_config_with_a_local_folder(tiny_model_dir):
    config = Config()
    config.model.base_model = str(tiny_model_dir)
    result = estimate_for_config(config, on_gpu=False)
    assert result is not None and result.overhead_bytes == 0 and result.peak_bytes > result.weights_bytes


def test_unknown_hub_model_offline_gives_none():
    config = Config()
    config.model.base_model = "nobody/no-such-model-xyz"
    assert estimate_for_config(config) is None


def test_compare_with_run_reports_relative_error():
    assert compare_with_run(110, 100)["relative_error"] == pytest.approx(0.1)


def test_cli_estimate_for_a_folder_and_a_missing_run(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    config = tmp_path / "c.toml"
    config.write_text(f'[model]\nbase_model = "{tiny_model_dir}"\n[train]\nruns_dir = "{tmp_path / "runs"}"\n')
    run = [sys.executable, "-m", "carexpert.cli.main", "estimate", "--config", str(config), "--gpu-name", "H100",
           "--gpu-memory", "80"]
    ok = subprocess.run(run, capture_output=True, text=True)
    assert ok.returncode == 0 and "peak" in ok.stdout and "fits" in ok.stdout
    missing = subprocess.run(run + ["--run", "nope"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr
