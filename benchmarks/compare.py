"""Side by side: the seed baseline (a) and carexpert's default path (b) from one run on one card.

Reads the JSON files the two benchmarks wrote, prints the table and writes a summary
with the ratios and the loss-equivalence check:

- tolerance: over the first 20 optimizer steps, the mean absolute relative difference
  of the step losses must stay under 0.5% and the largest under 1%. The same data in
  the same order meet it up to bf16 rounding, dropout masks drawn in another order and
  the baseline's fp32 norms/output layer; a real change in what is learned does not:
  a wrong normalization, learning rate or data order moves the loss by more than the
  step-to-step spread, which is printed next to the check (``sensitivity``).

    python benchmarks/compare.py RESULTS_DIR [--out summary.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc

STEPS_COMPARED = 20
MEAN_TOLERANCE = 0.005
MAX_TOLERANCE = 0.01


def loss_check(seed_steps: list[dict], carexpert_steps: list[dict]) -> dict:
    a = [s["loss"] for s in seed_steps[:STEPS_COMPARED]]
    b = [s["loss"] for s in carexpert_steps[:STEPS_COMPARED]]
    count = min(len(a), len(b))
    if count == 0:
        return {"passed": False, "reason": "no steps to compare"}
    rel = [abs(x - y) / abs(x) for x, y in zip(a[:count], b[:count])]
    spread = [abs(a[i + 1] - a[i]) / abs(a[i]) for i in range(len(a) - 1)]
    mean, worst = sum(rel) / count, max(rel)
    return {"steps": count, "mean_abs_rel_diff": mean, "max_abs_rel_diff": worst,
            "mean_tolerance": MEAN_TOLERANCE, "max_tolerance": MAX_TOLERANCE,
            "sensitivity_step_to_step": sum(spread) / len(spread) if spread else None,
            "loss_drop_seed": a[0] - a[count - 1], "loss_drop_carexpert": b[0] - b[count - 1],
            "seed_losses": a[:count], "carexpert_losses": b[:count],
            "passed": count == STEPS_COMPARED and mean < MEAN_TOLERANCE and worst < MAX_TOLERANCE}


def summarize(folder: Path) -> dict:
    seed = json.loads((folder / "seed_baseline.json").read_text())
    ours = json.loads((folder / "carexpert_train.json").read_text())
    small_path = folder / "carexpert_train_mb4.json"
    small = json.loads(small_path.read_text()) if small_path.exists() else None
    same_card = seed["environment"].get("gpu") == ours["environment"].get("gpu")
    summary = {
        "card": seed["environment"].get("nvidia_smi") or seed["environment"].get("gpu"),
        "same_card": same_card, "peak_tflops_used_for_mfu": tc.H100_BF16_DENSE_TFLOPS,
        "environment": seed["environment"],
        "seed": {k: seed.get(k) for k in ("load_s", "tokens_per_s", "steps_per_min", "mfu", "padding_share",
                                          "peak_allocated_gib", "peak_reserved_gib", "timed_steps")},
        "carexpert": {k: ours.get(k) for k in ("start_to_model_ready_s", "tokens_per_s", "steps_per_min", "mfu",
                                               "peak_allocated_gib", "timed_steps", "quantized_layers_ok",
                                               "events_carry_vram", "final_state")}
                     | {"plan": ours["summary"].get("plan")},
        "speedup_tokens_per_s": ours["tokens_per_s"] / seed["tokens_per_s"],
        "speedup_steps_per_min": ours["steps_per_min"] / seed["steps_per_min"],
        "loss_check": loss_check(seed["steps"], ours["steps"]),
    }
    if small:
        summary["carexpert_seed_micro_batch"] = {
            k: small.get(k) for k in ("tokens_per_s", "steps_per_min", "peak_allocated_gib", "final_state")
        } | {"plan": small["summary"].get("plan"),
             "peak_not_above_seed": small.get("peak_allocated_gib", 1e9) <= seed["peak_allocated_gib"]}
    return summary


def print_table(summary: dict) -> None:
    seed, ours = summary["seed"], summary["carexpert"]
    rows = [("tokens/s (real tokens)", "tokens_per_s", "{:.0f}"), ("optimizer steps/min", "steps_per_min", "{:.1f}"),
            ("MFU (4N FLOPs/token)", "mfu", "{:.1%}"), ("peak VRAM allocated (GiB)", "peak_allocated_gib", "{:.2f}")]
    print(f"card: {summary['card']}")
    print(f"{'':28}{'seed (a)':>12}{'carexpert (b)':>16}")
    for label, key, fmt in rows:
        a, b = seed.get(key), ours.get(key)
        print(f"{label:28}{fmt.format(a) if a is not None else '-':>12}{fmt.format(b) if b is not None else '-':>16}")
    print(f"speed-up: {summary['speedup_tokens_per_s']:.2f}x tokens/s, {summary['speedup_steps_per_min']:.2f}x steps/min")
    check = summary["loss_check"]
    if "mean_abs_rel_diff" in check:
        print(f"loss check over {check['steps']} steps: mean |rel diff| {check['mean_abs_rel_diff']:.3%} "
              f"(< {check['mean_tolerance']:.1%}), max {check['max_abs_rel_diff']:.3%} (< {check['max_tolerance']:.0%}); "
              f"step-to-step spread {check['sensitivity_step_to_step']:.3%}: {'PASS' if check['passed'] else 'FAIL'}")
    else:
        print(f"loss check: FAIL ({check.get('reason')})")
    small = summary.get("carexpert_seed_micro_batch")
    if small:
        print(f"carexpert at the seed's micro-batch: {small['tokens_per_s']:.0f} tokens/s, peak "
              f"{small['peak_allocated_gib']:.2f} GiB (seed {seed['peak_allocated_gib']:.2f} GiB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    summary = summarize(args.folder)
    print_table(summary)
    tc.write_json(args.out or args.folder / "summary.json", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
