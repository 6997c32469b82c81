"""The embedded model's training levers one by one, on carexpert's own pieces, in one process.

For each base-weight format (NF4 4-bit and bf16) the embedded Gemma 3 270M is loaded once
through ``carexpert.training.model_setup`` (LoRA as configured), then the same optimizer
steps on the same builtin (retrieval-augmented) examples run under each configuration:
the output-layer loss (selective = all labelled logits at once, chunked), the optimizer
(the seed's paged 8-bit AdamW, fused AdamW) and per-layer ``torch.compile``. The LoRA
weights are reset before each, so the first step's loss must agree within a format.
Every step ends with the loss read on the host, as the Trainer's per-step logging does.
A micro-benchmark of the output layer + cross-entropy alone (time, peak memory, error
against fp32) at the run's labelled-row count comes first.

    python benchmarks/embedded_levers.py --out embedded_levers.json [--steps 12 --warmup 4]
    python benchmarks/embedded_levers.py --device cpu --base-model /tmp/tiny --steps 2 --warmup 1 \
        --examples-per-step 2 --max-length 128 --out /tmp/levers.json       # checks the script only
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc

CONFIGURATIONS = [  # (name, head_loss, optimizer, compile)
    ("selective head, paged 8-bit AdamW (before)", "selective", "paged_adamw_8bit", False),
    ("chunked head, paged 8-bit AdamW", "chunked", "paged_adamw_8bit", False),
    ("chunked head, fused AdamW", "chunked", "adamw_torch_fused", False),
    ("chunked head, fused AdamW, compiled layers", "chunked", "adamw_torch_fused", True),
]


def build_config(args):
    from carexpert.config import Config

    config = Config()
    config.data.data_dir = str(args.work / "data")
    if args.base_model:
        config.model.base_model = args.base_model
    if args.max_length:
        config.data.max_length = args.max_length
    return config


def load_examples(config, tokenizer, count: int) -> tuple[list[dict], dict]:
    from carexpert.training.data import load_training_data

    data = load_training_data(config, tokenizer)
    order = list(range(len(data.train)))
    random.Random(config.train.seed).shuffle(order)
    rows = [data.train[i] for i in order[:count]]
    lengths = [len(r["input_ids"]) for r in rows]
    stats = {"train_examples": len(data.train), "mean_tokens": sum(lengths) / len(lengths),
             "label_share": data.label_share()}
    return [{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows], stats


def make_optimizer(name: str, params: list, device: str):
    import torch

    if not device.startswith("cuda"):
        return torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)  # checking the script on a CPU
    if name == "paged_adamw_8bit":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(params, lr=2e-4, weight_decay=0.0)
    return torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0, fused=True)


def uncompile(model) -> None:
    from carexpert.training.loss import causal_lm

    for layer in causal_lm(model).get_decoder().layers:
        layer._compiled_call_impl = None


def run_configuration(model, steps: list[list[dict]], collators: dict, head_loss: str, optimizer_name: str,
                      compiled: bool, device: str, warmup: int, lora_init: dict) -> dict:
    import torch

    from carexpert.training.loss import chunked_lm_loss, selective_lm_loss
    from carexpert.training.model_setup import compile_decoder_layers

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in lora_init:
                param.copy_(lora_init[name])
    uncompile(model)
    compile_s = 0.0
    if compiled:
        compile_decoder_layers(model)
    loss_fn = chunked_lm_loss if head_loss == "chunked" else selective_lm_loss
    collator = collators["compiled" if compiled else "eager"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(optimizer_name, trainable, device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model.train()
    clock = tc.StepClock(warmup=warmup)
    losses, step_seconds = [], []
    for examples in steps:
        started = time.perf_counter()
        batch = {k: (v.to(device, non_blocking=True) if hasattr(v, "to") else v)
                 for k, v in collator(examples).items()}
        count = batch["labels"][:, 1:].ne(-100).sum()
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=cuda):
            loss, _ = loss_fn(model, batch, count)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 0.3)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # the host waits for the step here, as per-step logging does
        step_seconds.append(time.perf_counter() - started)
        real = sum(len(e["input_ids"]) for e in examples)
        clock.tick(real, real)
    if compiled:
        compile_s = step_seconds[0] - (sum(step_seconds[warmup:]) / max(len(step_seconds[warmup:]), 1))
    del optimizer
    memory = tc.memory_figures() if cuda else {"peak_allocated_gib": 0.0}
    figures = clock.figures(1)
    figures.pop("mfu", None)
    return {**figures, **memory, "losses": losses, "step_seconds": step_seconds,
            "first_step_extra_s_compile": compile_s if compiled else None}


def head_microbenchmark(device: str, vocab: int, hidden: int, rows: int, all_rows: int) -> list[dict]:
    """Output layer + cross-entropy alone: forward + backward time, peak memory, error against fp32."""
    import torch
    import torch.nn.functional as F

    from carexpert.training.head_loss import default_chunk_rows, labelled_head_loss

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    generator = torch.Generator(device="cpu").manual_seed(0)
    weight = (torch.randn(vocab, hidden, generator=generator) * 0.02).to(device, dtype)
    results = []
    for name, count in (("chunked", rows), ("selective", rows), ("full (every token)", all_rows)):
        h0 = torch.randn(count, hidden, generator=generator).to(device, dtype)
        targets = torch.randint(0, vocab, (count,), generator=generator).to(device)

        def once():
            h = h0.clone().requires_grad_(True)
            if name == "chunked":
                loss = labelled_head_loss(h, weight, targets, chunk_rows=default_chunk_rows(vocab)) / count
            else:
                loss = F.cross_entropy(F.linear(h, weight).float(), targets)
            loss.backward()
            return loss.detach(), h.grad

        once()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        started = time.perf_counter()
        repeats = 5 if cuda else 1
        for _ in range(repeats):
            loss, grad = once()
        if cuda:
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / repeats
        entry = {"head_loss": name, "rows": count, "ms": 1000 * seconds,
                 "peak_extra_gib": (torch.cuda.max_memory_allocated() - base) / 2**30 if cuda else None}
        if count == rows:  # against fp64 (the labelled rows only: every token's fp64 logits would not fit)
            h = h0.double().requires_grad_(True)
            reference = F.cross_entropy(F.linear(h, weight.double()), targets)
            reference.backward()
            entry.update(loss_rel_error=abs(loss.double().item() - reference.item()) / reference.item(),
                         grad_rel_error=((grad.double() - h.grad).norm() / h.grad.norm()).item())
            del h, reference
        results.append(entry)
        print(f"head {name}: {results[-1]}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/carexpert-embedded-levers"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per configuration, warm-up included")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--examples-per-step", type=int, default=16, help="the default effective batch (4 x 4)")
    parser.add_argument("--quantizations", default="nf4,none")
    parser.add_argument("--only", default="", help="comma-separated configuration numbers")
    parser.add_argument("--base-model", default="", help="another base model (checking the script on a CPU)")
    parser.add_argument("--max-length", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from carexpert.modeling.attention import VARLEN
    from carexpert.training.collate import make_collator
    from carexpert.training.model_setup import load_for_training, load_tokenizer_for_training
    from carexpert.training.plan import make_plan

    cuda = args.device.startswith("cuda")
    config = build_config(args)
    results: dict = {"environment": tc.environment(), "settings": {k: str(v) for k, v in vars(args).items()},
                     "runs": []}
    tokenizer = load_tokenizer_for_training(config)
    examples, stats = load_examples(config, tokenizer, args.steps * args.examples_per_step)
    results["data"] = stats
    steps = [examples[i:i + args.examples_per_step] for i in range(0, len(examples), args.examples_per_step)]
    labelled = sum(sum(1 for x in e["labels"][1:] if x != -100) for e in steps[0])
    chosen = [c for i, c in enumerate(CONFIGURATIONS) if not args.only or str(i) in args.only.split(",")]
    for quantization in args.quantizations.split(","):
        run_config = dataclasses.replace(config, model=dataclasses.replace(config.model, quantization=quantization),
                                         train=dataclasses.replace(config.train, compile="off"))
        plan = make_plan(run_config, cuda=cuda, cuda_bf16=cuda, cpu_bf16=False)
        started = time.perf_counter()
        model = load_for_training(run_config, plan, args.device)
        load_s = time.perf_counter() - started
        if not results.get("head"):
            head = model.get_base_model().get_output_embeddings().weight
            results["head"] = head_microbenchmark(args.device, head.shape[0], head.shape[1], labelled,
                                                  sum(len(e["input_ids"]) for e in steps[0]))
        flash = getattr(model.config, "_attn_implementation", "") in ("flash_attention_2", VARLEN)
        collators = {"eager": make_collator(tokenizer, packed=True, flash_attention=flash),
                     "compiled": make_collator(tokenizer, packed=True, flash_attention=flash,
                                               constant_max_length=config.data.max_length)}
        lora_init = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        for name, head_loss, optimizer, compiled in chosen:
            entry = {"quantization": quantization, "name": name, "head_loss": head_loss, "optimizer": optimizer,
                     "compile": compiled, "load_s": load_s, "attention": model.config._attn_implementation}
            try:
                entry.update(run_configuration(model, steps, collators, head_loss, optimizer, compiled, args.device,
                                               args.warmup, lora_init))
            except Exception as error:  # noqa: BLE001 - one failing lever must not lose the others
                entry.update(error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc(limit=8))
                if cuda:
                    torch.cuda.empty_cache()
            results["runs"].append(entry)
            tc.write_json(args.out, results)
            print(line(entry), flush=True)
        del model
        if cuda:
            torch.cuda.empty_cache()
    print_table(results["runs"])
    return 0


def line(entry: dict) -> str:
    head = f"{entry['quantization']:4} | {entry['name']}"
    if "error" in entry:
        return f"{head}: ERROR {entry['error'][:300]}"
    extra = (f", first step +{entry['first_step_extra_s_compile']:.1f} s (compiler)"
             if entry.get("first_step_extra_s_compile") is not None else "")
    return (f"{head}: {entry.get('tokens_per_s', 0):.0f} tok/s, {1000 * entry.get('elapsed_s', 0) / max(entry.get('timed_steps', 1), 1):.0f} "
            f"ms/step, peak {entry['peak_allocated_gib']:.2f} GiB, loss@1 {entry['losses'][0]:.5f}{extra}")


def print_table(runs: list[dict]) -> None:
    print("\nembedded model, one optimizer step of the default effective batch:")
    for entry in runs:
        print(line(entry))


if __name__ == "__main__":
    sys.exit(main())
