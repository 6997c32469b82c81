"""The recipe sweep of issue 13: train and evaluate recipe variants of the embedded model side by side.

Each variant is the shipped configuration with a few keys changed (LoRA targets, 4-bit or bf16
base weights, learning rate, epochs). Every variant runs ``carexpert train`` then
``carexpert eval`` (all four sides: base and tuned, closed-book and with retrieval) as a user
would, in its own folder; variants run in parallel on one GPU (the 270M model leaves an H200
mostly idle, so parallel runs finish sooner; their speed is NOT a benchmark — time a recipe
alone for that). Writes ``sweep.json`` (every variant's settings, wall times, tokens/s and the
evaluation summary's per-category sides) and prints one table; ``--pick`` prints the best
variant's overrides (highest tuned + retrieval score) for the next command.

    python benchmarks/rag_sweep.py --out /tmp/sweep --variants seed,all_linear,bf16,bf16_lr1e3 --parallel 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ALL_LINEAR = '["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]'
QKVO = '["q_proj","k_proj","v_proj","o_proj"]'
VARIANTS: dict[str, dict[str, str]] = {
    "seed": {"lora.target_modules": QKVO, "model.quantization": '"nf4"', "train.learning_rate": "2e-4"},
    "all_linear": {"lora.target_modules": ALL_LINEAR, "model.quantization": '"nf4"', "train.learning_rate": "2e-4"},
    "bf16": {"lora.target_modules": ALL_LINEAR, "model.quantization": '"none"', "train.learning_rate": "2e-4"},
    "bf16_lr5e4": {"lora.target_modules": ALL_LINEAR, "model.quantization": '"none"', "train.learning_rate": "5e-4"},
    "bf16_lr1e3": {"lora.target_modules": ALL_LINEAR, "model.quantization": '"none"', "train.learning_rate": "1e-3"},
    "nf4_lr1e3": {"lora.target_modules": ALL_LINEAR, "model.quantization": '"nf4"', "train.learning_rate": "1e-3"},
    "bf16_lr1e3_5ep": {"lora.target_modules": ALL_LINEAR, "model.quantization": '"none"',
                       "train.learning_rate": "1e-3", "train.epochs": "5"},
    "closed_book": {"lora.target_modules": ALL_LINEAR, "model.quantization": '"none"', "train.learning_rate": "1e-3",
                    "retrieval.enabled": "false"},
}
REPO = Path(__file__).resolve().parent.parent


def write_config(folder: Path, data_dir: Path, overrides: dict[str, str]) -> Path:
    """The shipped carexpert.toml with ``overrides`` (TOML values) and this variant's runs folder."""
    sections: dict[str, dict[str, str]] = {}
    for key, value in {**overrides, "train.runs_dir": json.dumps(str(folder / "runs")),
                       "data.data_dir": json.dumps(str(data_dir))}.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    text = "".join(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
                   for section, values in sections.items())
    path = folder / "carexpert.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    from carexpert.config import load_config

    load_config(path)  # refuse a bad override before any model load
    return path


def cli(*args: str, log: Path) -> tuple[int, float]:
    start = time.perf_counter()
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ carexpert {' '.join(args)}\n")
        handle.flush()
        code = subprocess.call([sys.executable, "-m", "carexpert.cli.main", *args], stdout=handle,
                               stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy())
    return code, time.perf_counter() - start


def run_variant(name: str, overrides: dict[str, str], root: Path, data_dir: Path, eval_args: list[str]) -> dict:
    folder = root / name
    config = write_config(folder, data_dir, overrides)
    log = folder / "log.txt"
    result: dict = {"variant": name, "overrides": overrides}
    code, seconds = cli("train", "--config", str(config), "--run-id", name, log=log)
    result.update(train_rc=code, train_s=round(seconds, 1))
    events = folder / "runs" / name / "events.jsonl"
    if events.exists():
        steps = [json.loads(line) for line in events.read_text().splitlines() if '"step"' in line]
        rates = [e.get("tokens_per_second") for e in steps if e.get("tokens_per_second")]
        losses = [e.get("loss") for e in steps if e.get("loss") is not None]
        result.update(tokens_per_second=rates[-1] if rates else None, first_loss=losses[0] if losses else None,
                      last_loss=losses[-1] if losses else None, steps=len(losses))
    if code != 0:
        return result
    code, seconds = cli("eval", name, "--config", str(config), *eval_args, log=log)
    result.update(eval_rc=code, eval_s=round(seconds, 1))
    summaries = sorted((folder / "runs" / name / "eval").glob("*/summary.json"))
    if summaries:
        result["summary"] = json.loads(summaries[-1].read_text())
    return result


def overall(result: dict, side: str, metric: str = "score"):
    summary = result.get("summary") or {}
    value = ((summary.get("overall") or {}).get(side) or {}).get(metric)
    return round(value, 3) if isinstance(value, (int, float)) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--variants", default="seed,all_linear,bf16,bf16_lr1e3")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--eval-args", default="", help="extra arguments for 'carexpert eval' (one string)")
    parser.add_argument("--overrides-file", type=Path, default=None,
                        help="a JSON object of overrides (e.g. a sweep's best.json) run as the variant 'chosen'")
    args = parser.parse_args()
    if args.overrides_file is not None:
        VARIANTS["chosen"] = json.loads(args.overrides_file.read_text(encoding="utf-8"))
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    root = args.out.resolve()
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    first = write_config(root / "_store", data_dir, {})
    cli("kb", "build", "--config", str(first), log=root / "kb.log")  # one store for every variant
    results: dict[str, dict] = {}
    queue = list(names)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name = queue.pop(0)
            outcome = run_variant(name, VARIANTS[name], root, data_dir, args.eval_args.split())
            with lock:
                results[name] = outcome
                print(f"[{time.strftime('%H:%M:%S')}] {name}: train {outcome.get('train_s')}s "
                      f"eval {outcome.get('eval_s')}s tuned_rag {overall(outcome, 'tuned_rag')}", flush=True)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.parallel))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = [results[n] for n in names if n in results]
    (root / "sweep.json").write_text(json.dumps(ordered, indent=1), encoding="utf-8")
    print(f"{'variant':<16} {'loss':>11} {'base':>6} {'base+r':>6} {'tuned':>6} {'tuned+r':>7} {'specs+r':>7}")
    for r in ordered:
        loss = f"{r.get('first_loss') or 0:.2f}->{r.get('last_loss') or 0:.2f}"
        specs = (((r.get("summary") or {}).get("categories") or {}).get("specs") or {}).get("tuned_rag") or {}
        print(f"{r['variant']:<16} {loss:>11} {overall(r, 'base_closed')!s:>6} {overall(r, 'base_rag')!s:>6} "
              f"{overall(r, 'tuned_closed')!s:>6} {overall(r, 'tuned_rag')!s:>7} {specs.get('numeric_accuracy')!s:>7}")
    scored = [r for r in ordered if overall(r, "tuned_rag") is not None and r["overrides"].get("retrieval.enabled") != "false"]
    if scored:
        best = max(scored, key=lambda r: overall(r, "tuned_rag"))
        (root / "best.json").write_text(json.dumps(best["overrides"]), encoding="utf-8")
        print("best:", best["variant"], json.dumps(best["overrides"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
