"""carexpert's own default training path, timed from its run folder: ``carexpert train`` as a user runs it.

Writes a config that changes only what the benchmark must (the base model folder, the
data file, the number of steps, where runs go, a step event per step; the seed's prompts:
no retrieved passages, 512 tokens at most) and runs
``python -m carexpert.cli.main train --config F --run-id ID`` in the foreground. Every
figure comes from the run's own ``events.jsonl``: the loss per step, the real-token
throughput carexpert reports, the per-GPU memory in each step event, the plan it chose
(micro-batch, checkpointing) and the number of 4-bit layers in the trained model.

    python benchmarks/carexpert_train.py --model /dev/shm/bench/model --data /dev/shm/bench/data.jsonl \
        --steps 30 --out benchmarks/results/carexpert_train.json [--set train.auto_micro_batch=false ...] [--gpus N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc

LINEAR_PER_LAYER = 7  # q, k, v, o, gate, up, down: all 4-bit in QLoRA


def toml_value(text: str) -> str:
    """A --set value as TOML: numbers and booleans as they are, anything else quoted."""
    if text in ("true", "false"):
        return text
    try:
        float(text)
        return text
    except ValueError:
        return json.dumps(text)


def write_config(folder: Path, model: str, data: str, steps: int, overrides: list[str]) -> Path:
    sections: dict[str, dict[str, str]] = {
        "model": {"base_model": json.dumps(model)},
        # the seed's examples exactly: no retrieved passages in the prompts, cut at 512 tokens
        "data": {"dataset": json.dumps(data), "max_length": "512"},
        "retrieval": {"enabled": "false"},
        "train": {"max_steps": str(steps), "runs_dir": json.dumps(str(folder / "runs")), "logging_steps": "1",
                  "eval_steps": "0", "save_steps": str(10 * steps)},
    }
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = toml_value(value)
    text = "".join(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
                   for section, values in sections.items())
    path = folder / "bench.toml"
    path.write_text(text, encoding="utf-8")
    from carexpert.config import load_config

    load_config(path)  # refuse a bad override here, not after a model load
    return path


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def figures_from_events(events: list[dict], warmup: int, params: int) -> dict:
    """Throughput over the steps after ``warmup``, from carexpert's own step events."""
    steps = [e for e in events if e["type"] == "step"]
    summary = next((e for e in events if e["type"] == "summary"), {})
    start = next((e for e in events if e["type"] == "start"), None)
    result: dict = {"steps": [{"step": e["step"], "loss": e["loss"], "grad_norm": e.get("grad_norm"),
                               "lr": e.get("lr"), "time": e["time"], "tokens_per_s": e.get("tokens_per_s"),
                               "gpus": e.get("gpus")} for e in steps]}
    result["summary"] = {k: summary.get(k) for k in ("total_params", "trainable_params", "trainable_percent",
                                                     "footprint_bytes", "quantized_layers", "device", "optimizer",
                                                     "precision", "notices", "plan")}
    if start and summary:
        result["start_to_model_ready_s"] = summary["time"] - start["time"]
    if steps:
        result["start_to_first_step_s"] = steps[0]["time"] - (start or steps[0])["time"]
    window = steps[warmup:]
    if len(window) >= 2:
        # carexpert's tokens_per_s is a step's real tokens over that step's training time;
        # the events' wall-clock gaps weight them into one figure for the window.
        gaps = [b["time"] - a["time"] for a, b in zip(steps[warmup - 1:], window)]
        tokens = sum(e["tokens_per_s"] * gap for e, gap in zip(window, gaps))
        elapsed = sum(gaps)
        result.update(timed_steps=len(window), elapsed_s=elapsed, tokens_per_s=tokens / elapsed,
                      steps_per_min=60 * len(window) / elapsed, mfu=tc.mfu(tokens / elapsed, params))
    peaks = [g["peak"] for e in steps for g in (e.get("gpus") or []) if g.get("peak") is not None]
    if peaks:
        result["peak_allocated_gib"] = max(peaks) / 2**30
    reserved = [g["reserved"] for e in steps for g in (e.get("gpus") or []) if g.get("reserved") is not None]
    if reserved:
        result["max_reserved_in_step_events_gib"] = max(reserved) / 2**30
    status = [e for e in events if e["type"] == "status"]
    result["final_state"] = status[-1]["state"] if status else None
    result["final_error"] = status[-1].get("error") if status else None
    evals = [e for e in events if e["type"] == "eval"]
    result["val_loss"] = evals[-1]["val_loss"] if evals else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/carexpert-bench"))
    parser.add_argument("--run-id", default="bench")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--gpus", type=int, default=1, help="carexpert train --gpus N (one rank per GPU)")
    args = parser.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    config = write_config(args.work, args.model, args.data, args.steps, args.overrides)
    command = [sys.executable, "-m", "carexpert.cli.main", "train", "--config", str(config), "--run-id", args.run_id]
    command += ["--gpus", str(args.gpus)] if args.gpus > 1 else []
    shutil.rmtree(args.work / "runs" / args.run_id, ignore_errors=True)  # a scratch folder: a second call starts afresh
    started = time.perf_counter()
    completed = subprocess.run(command, env=os.environ.copy())
    wall = time.perf_counter() - started
    from carexpert.estimate import load_shape

    shape = load_shape(args.model)
    run_dir = args.work / "runs" / args.run_id
    events = read_events(run_dir / "events.jsonl")
    result = {"environment": tc.environment(), "command": " ".join(command), "config": config.read_text(),
              "exit_code": completed.returncode, "wall_s": wall, "base_params": shape.total_params,
              **figures_from_events(events, args.warmup, shape.total_params)}
    expected = shape.layers * LINEAR_PER_LAYER
    result["quantized_layers_expected"] = expected
    result["quantized_layers_ok"] = result["summary"].get("quantized_layers") == expected
    result["events_carry_vram"] = all(e.get("gpus") for e in events if e["type"] == "step")
    result["adapter_files"] = sorted(p.name for p in (run_dir / "adapter").glob("*")) if (run_dir / "adapter").is_dir() else []
    result["run_dir"] = str(run_dir)
    tc.write_json(args.out, result)
    keys = ("start_to_model_ready_s", "tokens_per_s", "steps_per_min", "mfu", "peak_allocated_gib")
    print(f"carexpert {args.run_id}: exit {completed.returncode}, state {result['final_state']}, "
          + ", ".join(f"{k}={result[k]:.4g}" for k in keys if result.get(k) is not None))
    print("plan:", result["summary"].get("plan"), "| 4-bit layers:", result["summary"].get("quantized_layers"),
          "expected", expected, "| notices:", result["summary"].get("notices"))
    print("losses:", [round(s["loss"], 4) for s in result["steps"]][:20])
    return 0 if completed.returncode == 0 and result["quantized_layers_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
