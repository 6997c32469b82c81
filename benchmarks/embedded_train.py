"""The embedded model's default run, timed: ``carexpert train`` with the builtin data, as a user runs it.

Writes a config that changes only where data and runs go (plus any ``--set``), runs
``python -m carexpert.cli.main train --config F --run-id ID`` and reads every figure from
the run's ``events.jsonl``:

- ``tokens_per_s``: the real tokens of all steps over their training seconds (the step
  events' ``tokens`` and ``train_s``: evaluation and checkpoint pauses excluded), the
  definition carexpert reports per step;
- ``after_load_s``: from the ``summary`` event (model loaded, LoRA on) to the final
  status: every step, evaluation and checkpoint, the final evaluation and the adapter;
- ``steps_wall_s``: from the ``summary`` event to the last step event;
- the plan, notices, peak GPU memory, losses and validation losses.

    python benchmarks/embedded_train.py --out embedded_train.json [--set train.compile=on ...]
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
from carexpert_train import read_events, toml_value

TARGET_TOKENS_PER_S = 40_000
TARGET_AFTER_LOAD_S = 30.0


def write_config(folder: Path, overrides: list[str]) -> Path:
    sections: dict[str, dict[str, str]] = {
        "data": {"data_dir": json.dumps(str(folder / "data"))},
        "train": {"runs_dir": json.dumps(str(folder / "runs"))},
    }
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = toml_value(value)
    text = "".join(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
                   for section, values in sections.items())
    path = folder / "embedded.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    from carexpert.config import load_config

    load_config(path)  # refuse a bad override here, not after a model load
    return path


def figures(events: list[dict]) -> dict:
    """Throughput and the times after the model load, from one run's events."""
    start = next((e for e in events if e["type"] == "start"), None)
    summary = next((e for e in events if e["type"] == "summary"), None)
    steps = [e for e in events if e["type"] == "step"]
    status = [e for e in events if e["type"] == "status"]
    result: dict = {"steps": len(steps), "final_state": status[-1]["state"] if status else None,
                    "final_error": status[-1].get("error") if status else None}
    if summary:
        result["plan"] = summary.get("plan")
        result["notices"] = summary.get("notices")
        result["quantized_layers"] = summary.get("quantized_layers")
        result["optimizer"] = summary.get("optimizer")
        if start:
            result["start_to_model_ready_s"] = summary["time"] - start["time"]
        if steps:
            result["first_step_after_load_s"] = steps[0]["time"] - summary["time"]
            result["steps_wall_s"] = steps[-1]["time"] - summary["time"]
        if status and status[-1]["state"] == "finished":
            result["after_load_s"] = status[-1]["time"] - summary["time"]
    counted = [e for e in steps if e.get("tokens") is not None and e.get("train_s")]
    if counted:
        tokens, seconds = sum(e["tokens"] for e in counted), sum(e["train_s"] for e in counted)
        result.update(tokens=tokens, train_s=seconds, tokens_per_s=tokens / seconds)
        later = counted[1:]  # without the first step (warm-up, compilation)
        if later:
            result["tokens_per_s_after_first_step"] = sum(e["tokens"] for e in later) / sum(e["train_s"] for e in later)
        if "steps_wall_s" in result:
            result["tokens_per_wall_s_after_load"] = tokens / result["steps_wall_s"]
    peaks = [g["peak"] for e in steps for g in (e.get("gpus") or []) if g.get("peak") is not None]
    if peaks:
        result["peak_allocated_gib"] = max(peaks) / 2**30
    result["losses"] = [round(e["loss"], 5) for e in steps if e.get("loss") is not None]
    result["val_losses"] = [(e["step"], round(e["val_loss"], 5)) for e in events if e["type"] == "eval"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/carexpert-embedded"))
    parser.add_argument("--run-id", default="embedded-default")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)

    config = write_config(args.work, args.overrides)
    command = [sys.executable, "-m", "carexpert.cli.main", "train", "--config", str(config), "--run-id", args.run_id]
    shutil.rmtree(args.work / "runs" / args.run_id, ignore_errors=True)  # a scratch folder: a second call starts afresh
    started = time.perf_counter()
    completed = subprocess.run(command, env=os.environ.copy())
    wall = time.perf_counter() - started
    run_dir = args.work / "runs" / args.run_id
    events = read_events(run_dir / "events.jsonl") if (run_dir / "events.jsonl").exists() else []
    result = {"environment": tc.environment(), "command": " ".join(command), "config": config.read_text(),
              "exit_code": completed.returncode, "wall_s": wall, **figures(events)}
    result["targets"] = {
        "tokens_per_s": TARGET_TOKENS_PER_S, "after_load_s": TARGET_AFTER_LOAD_S,
        "tokens_per_s_met": (result.get("tokens_per_s") or 0) >= TARGET_TOKENS_PER_S,
        "after_load_s_met": result.get("after_load_s") is not None and result["after_load_s"] <= TARGET_AFTER_LOAD_S}
    tc.write_json(args.out, result)
    keys = ("start_to_model_ready_s", "first_step_after_load_s", "steps_wall_s", "after_load_s", "tokens_per_s",
            "tokens_per_s_after_first_step", "peak_allocated_gib")
    print(f"embedded {args.run_id}: exit {completed.returncode}, state {result.get('final_state')}, "
          f"{result.get('steps')} steps, wall {wall:.1f}s, "
          + ", ".join(f"{k}={result[k]:.4g}" for k in keys if result.get(k) is not None))
    print(f"  targets: tokens/s >= {TARGET_TOKENS_PER_S}: {result['targets']['tokens_per_s_met']}; "
          f"<= {TARGET_AFTER_LOAD_S:.0f} s after load: {result['targets']['after_load_s_met']}")
    print("  plan:", result.get("plan"), "| optimizer:", result.get("optimizer"), "| notices:", result.get("notices"))
    return 0 if completed.returncode == 0 and result.get("final_state") == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
