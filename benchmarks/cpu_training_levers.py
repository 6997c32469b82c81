"""CPU training step of the embedded Gemma 3 270M with and without carexpert's two batch levers.

One model load (4-bit NF4 base, LoRA r=64 on q/k/v/o, fp32 compute as carexpert's plan
picks on a CPU without bf16), the same 4 builtin examples, and four ways to run a
training step (forward + backward), interleaved round by round so a change in machine
load hits every variant alike:

- padded batch, logits for every token (the standard path);
- padded batch, selective logits (lm_head only where a label follows);
- packed batch (padding-free, position ids restart per example), every logit;
- packed batch, selective logits (what ``carexpert train`` does).

All four must report the same loss. Prints wall and CPU seconds per step.

    python benchmarks/cpu_training_levers.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    from carexpert.config import Config
    from carexpert.dataset import build_from_config
    from carexpert.dataset.tokenization import tokenize_records
    from carexpert.training.collate import make_collator
    from carexpert.training.loss import selective_lm_loss
    from carexpert.training.model_setup import load_for_training, load_tokenizer_for_training
    from carexpert.training.plan import make_plan

    config = Config()
    config.data.max_length = args.max_length
    tokenizer = load_tokenizer_for_training(config)
    rows, _ = tokenize_records(tokenizer, build_from_config(config).splits["train"][:64], args.max_length)
    model = load_for_training(config, make_plan(config, cuda=False), "cpu")
    model.train()
    features = rows[: args.examples]
    batches = {"padded": make_collator(tokenizer, packed=False)(features),
               "packed": make_collator(tokenizer, packed=True)(features)}

    def step(batch, selective: bool) -> float:
        if selective:
            loss, _ = selective_lm_loss(model, batch)
        else:
            loss = model(**batch, use_cache=False).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()

    variants = [("padded", False), ("padded", True), ("packed", False), ("packed", True)]
    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    losses = {}
    step(batches["packed"], True)  # warm-up
    for _ in range(args.rounds):
        for variant in variants:
            c0, w0 = time.process_time(), time.perf_counter()
            losses[variant] = step(batches[variant[0]], variant[1])
            wall[variant].append(time.perf_counter() - w0)
            cpu[variant].append(time.process_time() - c0)
    report = {
        "tokens_in_batch": {name: int(b["input_ids"].numel()) for name, b in batches.items()},
        "labelled_tokens": int((batches["packed"]["labels"][:, 1:] != -100).sum()),
        "results": {f"{b}, {'selective logits' if s else 'all logits'}": {
            "wall_s_median": round(statistics.median(wall[(b, s)]), 2),
            "cpu_s_median": round(statistics.median(cpu[(b, s)]), 2),
            "wall_s": [round(x, 2) for x in wall[(b, s)]], "loss": round(losses[(b, s)], 5)}
            for b, s in variants},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
