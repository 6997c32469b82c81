"""The benchmark scripts' own arithmetic: batches, the loss check, throughput from events (no GPU, no model)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import compare  # noqa: E402
import train_common as tc  # noqa: E402
from carexpert_train import figures_from_events, toml_value  # noqa: E402

EXAMPLES = [{"input_ids": [1, 5, 6, 2], "labels": [-100, -100, 6, 2]},
            {"input_ids": [1, 7, 2], "labels": [-100, 7, 2]}]


def test_packed_batch_has_no_padding_and_restarts_positions():
    batch = tc.packed_batch(EXAMPLES, "cpu", varlen=True)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2, 1, 7, 2]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    assert batch["labels"].tolist() == [[-100, -100, 6, 2, -100, 7, 2]]
    assert batch["cu_seq_lens_q"].tolist() == [0, 4, 7] and batch["max_length_q"] == 4


def test_padded_batch_pads_to_the_longest_with_ignored_labels():
    batch = tc.padded_batch(EXAMPLES, 0, "cpu")
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2], [1, 7, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist()[1] == [-100, 7, 2, -100]
    assert tc.label_count(EXAMPLES) == 4


def test_mfu_counts_four_n_flops_per_token():
    assert tc.mfu(1000, 7_000_000_000, peak_tflops=28.0) == pytest.approx(1.0)


def steps(losses):
    return [{"loss": x} for x in losses]


def test_loss_check_passes_for_rounding_and_fails_for_a_shifted_or_short_run():
    base = [11.0 - 0.1 * i for i in range(20)]
    assert compare.loss_check(steps(base), steps([x * 1.0004 for x in base]))["passed"]
    shifted = compare.loss_check(steps(base), steps(base[1:] + [base[-1] - 0.1]))
    assert not shifted["passed"]
    assert not compare.loss_check(steps(base[:10]), steps(base[:10]))["passed"]


def test_throughput_from_step_events_skips_the_warm_up():
    events = [{"type": "start", "time": 0.0}, {"type": "summary", "time": 5.0}]
    events += [{"type": "step", "step": i, "time": 5.0 + i, "loss": 1.0, "tokens_per_s": 100.0 * (i > 1) + 1.0,
                "gpus": [{"peak": 2**30, "reserved": 2**31}]} for i in range(1, 5)]
    figures = figures_from_events(events, warmup=1, params=1)
    assert figures["timed_steps"] == 3
    assert figures["tokens_per_s"] == pytest.approx(101.0)
    assert figures["steps_per_min"] == pytest.approx(60.0)
    assert figures["peak_allocated_gib"] == 1.0 and figures["start_to_model_ready_s"] == 5.0


def test_config_overrides_become_toml_values():
    assert toml_value("false") == "false" and toml_value("16") == "16" and toml_value("on") == '"on"'
