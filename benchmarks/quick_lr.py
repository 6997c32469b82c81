"""Which learning rate the quick profile should use: short runs at several rates, same batches.

The quick profile (``carexpert.training.quick``) trains for a few dozen steps, so the
default 2e-4 (tuned for 3 epochs) barely moves the adapter. This loads the embedded
model once per rate with the quick profile's CPU settings (fp32, no quantization,
adamw_torch, cosine with 10% warm-up), trains ``--steps`` steps on the same seeded
micro-batches of the real training data, and reports the mean loss on the first
``--validation`` validation records before and after, per rate. Same seed, same LoRA
init, same batches: only the rate differs.

    python benchmarks/quick_lr.py --steps 15 --rates 5e-4 1e-3 2e-3
"""

from __future__ import annotations

import argparse
import json
import random
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--validation", type=int, default=24)
    parser.add_argument("--rates", type=float, nargs="+", default=[5e-4, 1e-3, 2e-3])
    args = parser.parse_args()

    import torch
    from transformers import get_cosine_schedule_with_warmup

    from carexpert.config import load_or_default
    from carexpert.training.collate import make_collator
    from carexpert.training.loss import selective_lm_loss
    from carexpert.training.model_setup import load_for_training
    from carexpert.training.probe import prepare_data
    from carexpert.training.quick import QUICK_WARMUP, quick_settings
    from carexpert.training.session import plan_for_machine

    config = quick_settings(load_or_default(None), cuda=False)
    tokenizer, data, _size = prepare_data(config)
    plan = plan_for_machine(config, data)
    collate = make_collator(tokenizer, packed=True)
    order = random.Random(config.train.seed).sample(range(len(data.train)), args.steps * plan.micro_batch)
    batches = [collate([data.train[i] for i in order[k:k + plan.micro_batch]])
               for k in range(0, len(order), plan.micro_batch)]
    held = [collate([data.validation[i]]) for i in range(min(args.validation, len(data.validation)))]

    def validation_loss(model) -> float:
        model.eval()
        with torch.no_grad():
            losses = [float(selective_lm_loss(model, batch)[0]) for batch in held]
        model.train()
        return sum(losses) / len(losses)

    results = []
    for rate in args.rates:
        model = load_for_training(config, plan, "cpu")
        before = validation_loss(model)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=rate)
        schedule = get_cosine_schedule_with_warmup(optimizer, max(1, round(QUICK_WARMUP * args.steps)), args.steps)
        started = time.perf_counter()
        train_losses = []
        for batch in batches:
            loss = selective_lm_loss(model, batch)[0]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            train_losses.append(float(loss))
        seconds = time.perf_counter() - started
        after = validation_loss(model)
        row = {"lr": rate, "steps": args.steps, "val_before": round(before, 4), "val_after": round(after, 4),
               "train_first": round(train_losses[0], 3), "train_last3": round(sum(train_losses[-3:]) / 3, 3),
               "train_seconds": round(seconds, 1)}
        results.append(row)
        print(json.dumps(row), flush=True)
        del model, optimizer


if __name__ == "__main__":
    main()
