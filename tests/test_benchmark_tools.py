"""The benchmark scripts' own arithmetic: batches, the loss check, throughput from events (no GPU, no model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import compare
import gpu_scaling
import train_common as tc
from carexpert_train import figures_from_events, toml_value

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


def _scaling_result(tokens_per_s, losses, gpus, state="finished"):
    steps = [{"loss": loss, "gpus": [{"rank": r, "index": r, "peak": (10 + r + i) * 2**30, "reserved": 40 * 2**30}
                                     for r in range(gpus)]} for i, loss in enumerate(losses)]
    return {"tokens_per_s": tokens_per_s, "final_state": state, "steps": steps, "exit_code": 0,
            "summary": {"plan": {"world_size": gpus}}}


def test_scaling_summary_gives_efficiency_loss_check_and_every_gpus_peak():
    losses = [11.0 - 0.1 * i for i in range(20)]
    summary = gpu_scaling.summarize({1: _scaling_result(1000.0, losses, 1),
                                     2: _scaling_result(1900.0, [x * 1.001 for x in losses], 2),
                                     4: _scaling_result(3200.0, losses, 4)})
    one, two, four = summary["runs"]
    assert "scaling_efficiency" not in one
    assert two["scaling_efficiency"] == pytest.approx(0.95) and two["meets_target"]
    assert four["scaling_efficiency"] == pytest.approx(0.80) and four["meets_target"] is False
    assert two["loss_check"]["passed"] and four["loss_check"]["passed"]
    assert [(g["rank"], g["peak_gib"]) for g in four["per_gpu"]] == [(0, 29.0), (1, 30.0), (2, 31.0), (3, 32.0)]
    assert not summary["passed"]  # 4 GPUs missed 0.85
    assert "0.800 (0.85)" in gpu_scaling.table(summary) and "NOT PASSED" in gpu_scaling.table(summary)


def test_scaling_summary_fails_a_run_that_did_not_finish_or_learned_something_else():
    losses = [11.0 - 0.1 * i for i in range(20)]
    shifted = gpu_scaling.summarize({1: _scaling_result(1000.0, losses, 1),
                                     2: _scaling_result(1950.0, [x * 1.02 for x in losses], 2)})
    assert shifted["runs"][1]["meets_target"] and not shifted["runs"][1]["loss_check"]["passed"]
    assert not shifted["passed"]
    failed = gpu_scaling.summarize({1: _scaling_result(1000.0, losses, 1),
                                    2: {"final_state": "no result", "final_error": "boom", "steps": []}})
    assert not failed["all_finished"] and not failed["passed"]
    good = gpu_scaling.summarize({1: _scaling_result(1000.0, losses, 1), 2: _scaling_result(1990.0, losses, 2)})
    assert good["passed"]


def test_scaling_runs_keep_the_effective_batch(tmp_path, monkeypatch):
    assert gpu_scaling.run_overrides(4, micro_batch=16, accum_total=4, extra=["train.seed=1"]) == [
        "train.batch_size=16", "train.grad_accum=1", "train.auto_micro_batch=false", "train.seed=1"]
    with pytest.raises(SystemExit, match="not divisible by 4"):
        gpu_scaling.run_overrides(4, micro_batch=16, accum_total=6, extra=[])

    import carexpert_train

    calls = []
    losses = [11.0 - 0.1 * i for i in range(20)]

    def fake_main(argv):
        args = dict(zip(argv[::2], argv[1::2]))
        gpus = int(args["--gpus"])
        calls.append((gpus, [a for a in argv if a.startswith("--set=train.grad_accum")]))
        Path(args["--out"]).write_text(json.dumps(_scaling_result(1000.0 * gpus * 0.95, losses, gpus)))
        return 0

    monkeypatch.setattr(carexpert_train, "main", fake_main)
    out = tmp_path / "gpu_scaling.json"
    assert gpu_scaling.main(["--model", "m", "--data", "d", "--gpus", "2,1,4", "--work", str(tmp_path / "w"),
                             "--out", str(out)]) == 0
    assert calls == [(1, ["--set=train.grad_accum=4"]), (2, ["--set=train.grad_accum=2"]),
                     (4, ["--set=train.grad_accum=1"])]
    summary = json.loads(out.read_text())
    assert summary["passed"] and [r["gpus"] for r in summary["runs"]] == [1, 2, 4]
    assert (tmp_path / "gpu_scaling_4gpu.json").is_file()

    # a second call cut short before: finished counts with the same settings are kept, the others run again
    one = tmp_path / "gpu_scaling_1gpu.json"
    one.write_text(json.dumps({**json.loads(one.read_text()), "config": "[train]\nmax_steps = 40\nbatch_size = 16\n"
                               "grad_accum = 4\nauto_micro_batch = false\n"}))
    calls.clear()
    gpu_scaling.main(["--model", "m", "--data", "d", "--gpus", "1,2", "--work", str(tmp_path / "w"),
                      "--out", str(out), "--reuse-finished"])
    assert [gpus for gpus, _ in calls] == [2]


def test_rescore_asked_counts_a_right_price_as_right_under_the_asked_rule(tmp_path):
    """A saved price answer scored against {price, hp} (the old rule) gets 0.5; against the rebuilt
    record's asked reference, 1.0; an item the rebuilt split lacks keeps its saved reference."""
    import rescore_asked

    from carexpert.config import Config

    config = Config().to_dict()
    records = rescore_asked.rebuilt_test_records(config)
    record = next(r for r in records.values() if r["kind"] == "msrp" and "hp" in r["output"])
    price = record["reference"]["msrp_usd"]
    old_reference = {**record["reference"], "hp": 999.0}
    answer = f"It starts at ${price:,.0f}."

    def item(record_id: str) -> dict:
        return {"id": record_id, "category": "specs", "question": record["instruction"], "input": record["input"],
                "reference": record["output"], "expected": {"reference": old_reference, "key_terms": [],
                                                            "expect_refusal": False},
                "tuned_rag_answer": answer, "tuned_rag": {"numeric_accuracy": 0.5, "stop_reason": "eos"}}

    path = tmp_path / "x_items.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in (item(record["id"]), item("specs-not-rebuilt"))) + "\n")
    (tmp_path / "x_summary.json").write_text(json.dumps({"config": config}))
    assert rescore_asked.find_summary(path) == tmp_path / "x_summary.json"
    result = rescore_asked.rescore(rescore_asked.read_items(path), records, 0.03)
    assert result["re_referenced"] == 1 and result["unmatched"] == 1
    side = result["sides"]["tuned_rag"]
    assert side["saved"] == 0.5 and side["old_rule"] == 0.5 and side["asked_rule"] == 0.75
    assert [c["id"] for c in side["changed"]] == [record["id"]]


def test_startup_benchmark_reads_the_screen_text_through_escape_sequences():
    from app_startup import visible_text

    frame = (b"\x1b[?1049h\x1b[?25l\x1b]0;carexpert\x07\x1b[1;1H\x1b[38;2;221;227;234;48;2;18;22;28mcarexpert "
             b"\x1b[1mcheck\x1b[0m\x1bP=1s\x1b\\ done")
    text = visible_text(frame)
    assert "carexpert check" in text and "\x1b" not in text and text.endswith(" done")
    assert "carexpert check" not in visible_text(b"carexpert\x1b[2;1Hcheck")  # two rows are not one phrase
