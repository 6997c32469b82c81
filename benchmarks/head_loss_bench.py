"""The output layer + cross-entropy alone, each way in its own process: time and peak memory.

The embedded Gemma 3 270M's shape by default (262,144 x 640, tied, frozen), ``--rows``
labelled positions (about 1,500 in one step of the retrieval-augmented builtin data:
16 examples x ~491 tokens x 19% labelled). Peak memory is the process's peak resident
set (CPU) or peak allocated (GPU) above what the inputs take. ``full`` computes logits
for every token (``--all-rows``), as transformers' own loss does.

    python benchmarks/head_loss_bench.py --device cpu --rows 1500 --all-rows 7860
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

WAYS = ("chunked", "selective", "full")


def measure(way: str, device: str, rows: int, all_rows: int, vocab: int, hidden: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from carexpert.training.head_loss import default_chunk_rows, labelled_head_loss

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(0)
    count = all_rows if way == "full" else rows
    # made in place, so no temporary copy raises the baseline peak the measurement starts from
    weight = torch.empty(vocab, hidden, device=device, dtype=dtype).normal_(0, 0.02)
    hidden_states = torch.empty(count, hidden, device=device, dtype=dtype).normal_()
    targets = torch.randint(0, vocab, (count,), device=device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds = []
    for _ in range(repeats):
        h = hidden_states.clone().requires_grad_(True)
        started = time.perf_counter()
        if way == "chunked":
            loss = labelled_head_loss(h, weight, targets, chunk_rows=default_chunk_rows(vocab)) / count
        else:
            loss = F.cross_entropy(F.linear(h, weight).float(), targets)
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
    return {"way": way, "rows": count, "seconds_median": sorted(seconds)[len(seconds) // 2],
            "peak_extra_gib": peak / 2**30, "loss": loss.item()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--all-rows", type=int, default=7860)
    parser.add_argument("--vocab", type=int, default=262_144)
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--way", choices=WAYS, help="measure one way in this process (used by the parent)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.way:
        print(json.dumps(measure(args.way, args.device, args.rows, args.all_rows, args.vocab, args.hidden,
                                 args.repeats)))
        return 0
    results = []
    for way in WAYS:
        command = [sys.executable, __file__, "--way", way] + [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                                                             if k not in ("way", "out") and v is not None]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        results.append(json.loads(lines[-1]) if lines else {"way": way, "error": done.stderr[-500:]})
        print(results[-1], flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
