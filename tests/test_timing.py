"""Time before work: the run's steps, tokens and duration from a probe, and the quick profile's size."""

from __future__ import annotations

import dataclasses
import json

import pytest

from carexpert.config import Config, write_frozen_config
from carexpert.errors import UserError
from carexpert.training.quick import (
    QUICK_BUDGET_SECONDS,
    QUICK_LEARNING_RATE,
    quick_changes,
    quick_settings,
    size_quick,
)
from carexpert.training.timing import DataSize, Probe, long_run_warning, run_time, time_line

# The builtin data's size (1,130 training examples of 145 tokens on average) and a 2-core CPU
# that trains at 50 tokens/s and validates at 200 tokens/s.
DATA = DataSize(train_examples=1130, train_tokens=163_387, validation_examples=126, validation_tokens=18_333,
                setup_seconds=6.0)
CPU_PROBE = Probe(device="cpu", device_name="2 CPU threads (test CPU)", precision="fp32", micro_batch=4, tokens=1000,
                  seconds=20.0, forward_tokens=500, forward_seconds=2.5, load_seconds=5.0)


def test_the_default_schedule_on_a_slow_cpu_is_counted_and_flagged():
    estimate = run_time(Config().train, DATA, CPU_PROBE)
    # 283 micro-batches of 4 → 71 steps of 4 accumulated an epoch, 3 epochs: the Trainer's count
    assert estimate.steps == 213 and estimate.sequences_per_step == 16
    assert estimate.evaluations == 5  # every 50 steps (4) and the final one
    assert estimate.tokens == round(213 * 16 * DATA.mean_tokens)
    assert estimate.train_seconds == pytest.approx(estimate.tokens / 50)
    assert estimate.eval_seconds == pytest.approx(5 * 18_333 / 200)
    line = time_line(estimate)
    # 9,855 s training + 458 s validation + 41 s start-up
    assert line.startswith("213 steps x 16 sequences, 492.8 k tokens: about 2 h 53 min on 2 CPU threads (test CPU)")
    assert "measured 50 tokens/s" in line
    assert estimate.long and "quick profile" in long_run_warning(estimate)


def test_a_short_run_gets_no_warning():
    train = dataclasses.replace(Config().train, max_steps=10, eval_steps=0)
    estimate = run_time(train, DATA, CPU_PROBE)
    assert estimate.steps == 10 and estimate.evaluations == 1
    assert not estimate.long and long_run_warning(estimate) is None
    assert "23.1 k tokens: about 10 min" in time_line(estimate)  # 463 s training + 92 s validation + 41 s start


def test_quick_profile_on_a_two_core_cpu_fits_fifteen_minutes():
    config = quick_settings(Config(), cuda=False)
    assert (config.model.quantization, config.train.precision, config.train.optimizer) == ("none", "fp32",
                                                                                             "adamw_torch")
    assert config.train.grad_accum == 1 and config.train.learning_rate == QUICK_LEARNING_RATE
    assert config.data.validation_fraction == 0.01 and config.retrieval.top_k == 1 and config.data.test_fraction == Config().data.test_fraction
    sized, estimate = size_quick(config, DATA, CPU_PROBE)
    # (900 s x 0.85 - 41 s start-up - 92 s validation) / (144.6 tokens / 50 tokens/s) = 218 examples,
    # 54 steps of 4
    assert sized.train.batch_size == 4 and sized.train.max_steps == estimate.steps == 54
    assert 0.7 * QUICK_BUDGET_SECONDS < estimate.total_seconds <= QUICK_BUDGET_SECONDS
    assert sized.train.eval_steps == 0 and estimate.evaluations == 1
    # the hard stop: (900 s - 1.5 x (41 s start-up + 92 s validation) - 2 steps of 11.6 s) / 60
    assert sized.train.max_minutes == 11.3
    changes = quick_changes(Config(), sized)
    assert "train.precision: 'bf16' → 'fp32'" in changes and "train.max_steps: 0 → 54" in changes


def test_the_probe_s_own_minutes_come_out_of_the_quick_budget():
    config = quick_settings(Config(), cuda=False)
    fresh, _ = size_quick(config, DATA, CPU_PROBE)
    late, late_estimate = size_quick(config, DATA, CPU_PROBE, spent_seconds=120)
    assert late.train.max_steps < fresh.train.max_steps and late.train.max_minutes == fresh.train.max_minutes - 2
    assert late_estimate.total_seconds + 120 <= QUICK_BUDGET_SECONDS


def test_quick_profile_follows_the_data_and_the_machine():
    config = quick_settings(Config(), cuda=False)
    longer = dataclasses.replace(DATA, train_tokens=DATA.train_tokens * 3, validation_tokens=DATA.validation_tokens * 3)
    base_steps = size_quick(config, DATA, CPU_PROBE)[0].train.max_steps
    assert size_quick(config, longer, CPU_PROBE)[0].train.max_steps < base_steps / 3  # longer prompts: fewer steps
    faster = dataclasses.replace(CPU_PROBE, seconds=5.0, forward_seconds=0.625)
    assert size_quick(config, DATA, faster)[0].train.max_steps > 3 * base_steps
    crawling = dataclasses.replace(CPU_PROBE, seconds=1000.0)  # 1 token/s: 4 examples in the budget
    with pytest.raises(UserError, match="would see only 4 examples"):
        size_quick(config, DATA, crawling)


def test_quick_profile_with_long_retrieval_prompts_on_a_loaded_cpu_takes_smaller_steps():
    grounded = DataSize(train_examples=1229, train_tokens=624_277, validation_examples=24, validation_tokens=10_766,
                        setup_seconds=23.0)
    loaded = dataclasses.replace(CPU_PROBE, micro_batch=1, tokens=508, seconds=508 / 15, forward_tokens=508,
                                 forward_seconds=508 / 45)
    sized, estimate = size_quick(quick_settings(Config(), cuda=False), grounded, loaded)
    # (765 s - 58 s start-up - 239 s validation) / 33.9 s an example = 13 examples: 13 steps of 1, not 3 of 4
    assert (sized.train.batch_size, sized.train.max_steps) == (1, 13)
    assert estimate.total_seconds <= QUICK_BUDGET_SECONDS


def test_quick_profile_on_a_gpu_keeps_the_configs_precision():
    config = quick_settings(Config(), cuda=True)
    assert config.model.quantization == Config().model.quantization and config.train.precision == "bf16"
    gpu = dataclasses.replace(CPU_PROBE, device="cuda", device_name="NVIDIA H100", seconds=0.1, forward_seconds=0.01)
    sized, _estimate = size_quick(config, DATA, gpu)
    assert sized.train.max_steps == 283 * 3  # the whole schedule fits: capped at the configured epochs


@pytest.mark.slow
def test_probe_and_estimate_cli_on_the_tiny_model(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from carexpert.cli.main import main
    from carexpert.training.probe import probe_for
    from tests.training_support import tiny_config, write_tiny_dataset

    monkeypatch.setenv("CAREXPERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tiny_model_dir, write_tiny_dataset(tmp_path / "data.jsonl"))
    config.data.data_dir = str(tmp_path / "data")
    probe, size, cached = probe_for(config)
    assert not cached and probe.tokens > 0 and probe.seconds > 0 and probe.device == "cpu"
    assert size.train_examples > 0 and size.train_tokens > size.train_examples
    assert probe_for(config)[2] is True  # cached per machine and config
    assert probe_for(config, max_age_seconds=0)[2] is False  # too old: measured again
    write_frozen_config(tmp_path / "carexpert.toml", config)
    capsys.readouterr()
    assert main(["estimate", "--json", "--quick"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["time"]["steps"] > 0 and not report["time"]["long"]
    assert any(change.startswith("train.max_steps") for change in report["quick_changes"])
    # a run of many hours from a script (no terminal, not detached) is refused without --yes; the probe is
    # made 1,000 times slower so "many hours" does not depend on how busy this machine is
    from carexpert.training import probe as probe_module

    measured = probe_module.probe_for

    def slow_machine(config, **options):
        found, data, cached = measured(config, **options)
        return dataclasses.replace(found, seconds=found.seconds * 1000,
                                   forward_seconds=found.forward_seconds * 1000), data, cached

    monkeypatch.setattr(probe_module, "probe_for", slow_machine)
    config.train.max_steps, config.train.epochs = 0, 1000.0
    write_frozen_config(tmp_path / "carexpert.toml", config)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["train"]) == 2
    captured = capsys.readouterr()
    assert "warning: this run would take" in captured.out and "--yes" in captured.err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
