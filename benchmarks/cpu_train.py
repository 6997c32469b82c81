"""CPU training throughput of the default configuration, before and after its own levers.

The embedded Gemma 3 270M on the builtin dataset, through ``carexpert.training.run`` in
this process (the code ``carexpert train`` runs), a few optimizer steps each:

- ``default``: the configuration as shipped (padding-free packing, logits only where
  labels are, fp32 on a CPU without native bf16);
- ``no padding-free``: ``train.padding_free = false`` (right padding to the longest);
- ``no selective logits``: the full [tokens x 262,144] logits, as the standard loss does;
- ``neither``: both off — what the seed's stack does on this machine, save precision;
- ``unquantized``: the default with ``model.quantization = "none"`` (fp32 weights): on a
  CPU bitsandbytes' 4-bit layers dequantize on every matmul.

Throughput is real (non-padding) tokens per second from the run's own step events,
skipping the first ``--warmup`` steps. The cores are shared with other work: the
load average is recorded before and after each run.

    python benchmarks/cpu_train.py --steps 3 --warmup 1 --batch 4 --accumulation 1 \
        --out benchmarks/results/cpu_train.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc
from carexpert_train import figures_from_events, read_events

VARIANTS = {
    "default": dict(padding_free=True, selective=True),
    "no padding-free": dict(padding_free=False, selective=True),
    "no selective logits": dict(padding_free=True, selective=False),
    "neither (seed-style batching)": dict(padding_free=False, selective=False),
    "default, unquantized (quantization none)": dict(padding_free=True, selective=True, quantization="none"),
}


def run_variant(name: str, padding_free: bool, selective: bool, steps: int, warmup: int, work: Path,
                batch: int, accumulation: int, quantization: str = "nf4") -> dict:
    from carexpert.config.schema import Config
    from carexpert.estimate import shape_for_model
    from carexpert.runs.paths import RunPaths
    from carexpert.training import entry, loss

    config = Config()
    config.model = dataclasses.replace(config.model, quantization=quantization)
    config.train = dataclasses.replace(config.train, max_steps=steps, padding_free=padding_free, logging_steps=1,
                                       batch_size=batch, grad_accum=accumulation,
                                       eval_steps=0, save_steps=10 * steps, tensorboard=False,
                                       runs_dir=str(work / "runs"))
    config.data = dataclasses.replace(config.data, validation_fraction=0.0)
    original = loss.supports_selective_logits
    if not selective:
        loss.supports_selective_logits = lambda model: False
    run_id = "cpu-" + "".join(c if c.isalnum() else "-" for c in name)[:40].strip("-")
    paths = RunPaths.of(config.train.runs_dir, run_id)
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        outcome = entry.run(config, paths)
    finally:
        loss.supports_selective_logits = original
    wall = time.perf_counter() - started
    shape = shape_for_model("embedded")
    params = shape.total_params if shape else 0
    figures = figures_from_events(read_events(paths.root / "events.jsonl"), warmup, params)
    figures.pop("mfu", None)  # no meaningful peak to divide by on a shared CPU
    return {"variant": name, "padding_free": padding_free, "selective_logits": selective, "quantization": quantization,
            "batch_size": batch, "grad_accum": accumulation, "state": outcome.state,
            "wall_s": wall, "load_average_before": load_before, "load_average_after": os.getloadavg(), **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/carexpert-cpu-bench"))
    parser.add_argument("--only", default="", help="variant names separated by ';'")
    parser.add_argument("--batch", type=int, default=4, help="micro-batch (the default config's)")
    parser.add_argument("--accumulation", type=int, default=4, help="the default config's is 4")
    args = parser.parse_args(argv)
    import torch

    results = {"environment": tc.environment() | {"cpu_threads": torch.get_num_threads(), "cores": os.cpu_count()},
               "runs": []}
    wanted = [v for v in args.only.split(";") if v] or list(VARIANTS)
    for name in wanted:
        entry = run_variant(name, **VARIANTS[name], steps=args.steps, warmup=args.warmup, work=args.work,
                            batch=args.batch, accumulation=args.accumulation)
        results["runs"].append(entry)
        tc.write_json(args.out, results)
        print(f"{name}: {entry.get('tokens_per_s', float('nan')):.0f} tokens/s, "
              f"{entry.get('steps_per_min', float('nan')):.2f} steps/min, state {entry['state']}, "
              f"load {entry['load_average_before'][0]:.1f}->{entry['load_average_after'][0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
