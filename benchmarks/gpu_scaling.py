"""Several GPUs against one: ``carexpert train --gpus N`` for N = 1, 2, 4 on the benchmark model, in one call.

Every run trains the same examples in each optimizer step: the per-GPU micro-batch is
fixed (``auto_micro_batch`` off) and ``grad_accum`` is ``accum_total / N``, so the
effective batch (micro-batch x accumulation x GPUs) is equal, each GPU does the same
work per micro-batch, and the loss curves must agree within ``compare.py``'s tolerance.
Each run is ``benchmarks/carexpert_train.py`` (the real CLI; figures from the run's own
events): tokens/s over the steps after warm-up (real tokens of all ranks), and each
rank's peak allocated and reserved GPU memory from the step events.

Scaling efficiency at N = tokens/s at N / (N x tokens/s at 1). Targets (issue 18):
at least 0.90 at 2 GPUs and 0.85 at 4.

    python benchmarks/gpu_scaling.py --model /dev/shm/bench/model --data /dev/shm/bench/data.jsonl \
        --gpus 1,2,4 --out benchmarks/results/raw/gpu_scaling.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare
import train_common as tc

TARGETS = {2: 0.90, 4: 0.85}
GIB = 2**30


def run_overrides(gpus: int, *, micro_batch: int, accum_total: int, extra: list[str]) -> list[str]:
    """The ``--set`` items of the N-GPU run: same per-GPU micro-batch, same effective batch."""
    if accum_total % gpus:
        raise SystemExit(f"--accum-total {accum_total} is not divisible by {gpus} GPUs: the effective batch "
                         "would differ between runs")
    return [f"train.batch_size={micro_batch}", f"train.grad_accum={accum_total // gpus}",
            "train.auto_micro_batch=false", *extra]


def per_gpu_memory(steps: list[dict]) -> list[dict]:
    """Each rank's highest peak-allocated and reserved memory over the run's step events."""
    table: dict[int, dict] = {}
    for step in steps:
        for position, gpu in enumerate(step.get("gpus") or []):
            rank = gpu.get("rank", position)
            row = table.setdefault(rank, {"rank": rank, "index": gpu.get("index"), "peak_gib": 0.0,
                                          "reserved_gib": 0.0})
            row["peak_gib"] = max(row["peak_gib"], (gpu.get("peak") or 0) / GIB)
            row["reserved_gib"] = max(row["reserved_gib"], (gpu.get("reserved") or 0) / GIB)
    return [table[rank] for rank in sorted(table)]


def summarize(results: dict[int, dict]) -> dict:
    """Efficiency, loss check against the 1-GPU run and per-GPU memory, for each GPU count."""
    base = results.get(1)
    rows = []
    for gpus, result in sorted(results.items()):
        row = {"gpus": gpus, "exit_code": result.get("exit_code"), "final_state": result.get("final_state"),
               "final_error": result.get("final_error"), "tokens_per_s": result.get("tokens_per_s"),
               "steps_per_min": result.get("steps_per_min"), "timed_steps": result.get("timed_steps"),
               "plan": (result.get("summary") or {}).get("plan"), "per_gpu": per_gpu_memory(result.get("steps", []))}
        if gpus > 1:
            if base and base.get("tokens_per_s") and result.get("tokens_per_s"):
                row["scaling_efficiency"] = result["tokens_per_s"] / (gpus * base["tokens_per_s"])
            target = TARGETS.get(gpus)
            row["efficiency_target"] = target
            row["meets_target"] = (row["scaling_efficiency"] >= target
                                   if target is not None and "scaling_efficiency" in row else None)
            row["loss_check"] = compare.loss_check(base["steps"], result["steps"]) if base else None
        rows.append(row)
    finished = all(row["final_state"] == "finished" for row in rows)
    checks = [row for row in rows if row["gpus"] > 1]
    passed = (base is not None and finished and bool(checks)
              and all(row["meets_target"] is not False and (row["loss_check"] or {}).get("passed") for row in checks))
    return {"runs": rows, "all_finished": finished, "passed": passed}


def table(summary: dict) -> str:
    lines = ["GPUs  tokens/s  efficiency (target)  loss check (mean/max rel diff)  peak GiB per GPU"]
    for row in summary["runs"]:
        efficiency = row.get("scaling_efficiency")
        target = row.get("efficiency_target")
        check = row.get("loss_check") or {}
        loss = (f"{'pass' if check.get('passed') else 'FAIL'} {check.get('mean_abs_rel_diff', 0):.4f}/"
                f"{check.get('max_abs_rel_diff', 0):.4f}" if check else "(reference)")
        peaks = " ".join(f"{g['peak_gib']:.1f}" for g in row["per_gpu"]) or "?"
        lines.append(f"{row['gpus']:>4}  {row['tokens_per_s'] or 0:>8.0f}  "
                     + (f"{efficiency:>10.3f} ({target})" if efficiency is not None else f"{'-':>10}      ")
                     + f"  {loss:<31}  {peaks}  [{row['final_state']}]")
    lines.append("PASSED" if summary["passed"] else "NOT PASSED (see the rows above)")
    return "\n".join(lines)


def _finished_with(path: Path, sets: list[str], steps: int) -> bool:
    """Whether ``path`` holds a finished run of ``steps`` steps whose config had every one of ``sets``."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    config = result.get("config") or ""
    wanted = [f"{item.split('=', 1)[0].split('.', 1)[1]} = {item.split('=', 1)[1]}" for item in sets]
    return (result.get("final_state") == "finished" and f"max_steps = {steps}" in config
            and all(line in config for line in wanted))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--gpus", default="1,2,4", help="GPU counts, comma-separated; 1 is the reference")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--accum-total", type=int, default=4, help="accumulation at 1 GPU; divided by N at N GPUs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/carexpert-scaling"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--reuse-finished", action="store_true",
                        help="keep a GPU count's result from an earlier call when that run finished with the same "
                             "settings (a call cut short by its time limit goes on where it stopped)")
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.gpus.split(",")})
    if 1 not in counts:
        raise SystemExit("--gpus must include 1: it is the reference for efficiency and loss")

    import carexpert_train

    results = {}
    for gpus in counts:
        out = args.out.with_name(f"{args.out.stem}_{gpus}gpu.json")
        sets = run_overrides(gpus, micro_batch=args.micro_batch, accum_total=args.accum_total, extra=args.overrides)
        command = ["--model", args.model, "--data", args.data, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--out", str(out), "--work", str(args.work / f"{gpus}gpu"),
                   "--run-id", f"scale-{gpus}gpu", "--gpus", str(gpus)] + [f"--set={item}" for item in sets]
        if args.reuse_finished and _finished_with(out, sets, args.steps):
            print(f"=== {gpus} GPU(s): reusing {out} (finished, same settings)", flush=True)
            results[gpus] = json.loads(out.read_text(encoding="utf-8"))
            continue
        print(f"=== {gpus} GPU(s): carexpert_train.py {' '.join(command)}", flush=True)
        shutil.rmtree(args.work / f"{gpus}gpu", ignore_errors=True)  # this script's scratch from an earlier call
        out.unlink(missing_ok=True)
        try:
            carexpert_train.main(command)
            results[gpus] = json.loads(out.read_text(encoding="utf-8"))
        except Exception as error:  # noqa: BLE001 - one failed count must not hide the others' figures
            print(f"=== {gpus} GPU(s) gave no result: {type(error).__name__}: {error}", flush=True)
            results[gpus] = {"final_state": "no result", "final_error": f"{type(error).__name__}: {error}",
                             "steps": []}
    summary = summarize(results)
    summary["environment"] = results[1].get("environment") or tc.environment()
    summary["settings"] = {"steps": args.steps, "warmup": args.warmup, "micro_batch": args.micro_batch,
                           "accum_total": args.accum_total, "overrides": args.overrides}
    tc.write_json(args.out, summary)
    print(table(summary))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
