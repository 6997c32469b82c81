"""Each training lever alone, on one 4-bit model load: which ones win, and by how much.

One QLoRA model (NF4 + double quantization, bf16 compute, LoRA r=64 on q/k/v/o, paged
8-bit AdamW, grad clipping 0.3) is trained on the same 16 sequences per optimizer step
under a list of configurations that each change one thing from the seed's recipe, then
combinations. Before every configuration the LoRA weights and the optimizer are reset,
so the first step's loss (the adapter's B is still zero) must agree across all of them:
a check that packing, the attention kernel and selective logits compute the same loss.

    python benchmarks/levers.py --model /dev/shm/bench/model --data /dev/shm/bench/data.jsonl \
        --out benchmarks/results/levers.json
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc

from carexpert.modeling.attention import VARLEN, register_varlen

SEED_RECIPE = dict(batching="padded", micro_batch=4, checkpointing=True, upcast=True, selective=False,
                   attention="sdpa", liger=False, compile=False)


def configurations(include_liger: bool) -> list[tuple[str, dict]]:
    """(name, settings): the seed recipe, one lever at a time, then combinations."""
    best = dict(batching="varlen", micro_batch=16, checkpointing=False, upcast=False, selective=True,
                attention=VARLEN, liger=False)
    combos = [
        ("seed recipe (custom loop)", {}),
        ("no fp32 upcast", dict(upcast=False)),
        ("padding-free, SDPA packed mask", dict(batching="packed")),
        ("padding-free, varlen flash", dict(batching="varlen", attention=VARLEN)),
        ("no gradient checkpointing", dict(checkpointing=False)),
        ("micro-batch 16 (no accumulation)", dict(micro_batch=16)),
        ("selective logits", dict(selective=True)),
        ("all: SDPA packed mask", {**best, "batching": "packed", "attention": "sdpa"}),
        ("all: varlen flash", best),
        ("all, micro-batch 8", {**best, "micro_batch": 8}),
        ("all, checkpointing on", {**best, "checkpointing": True}),
        ("all, micro-batch 4, checkpointing on", {**best, "micro_batch": 4, "checkpointing": True}),
        ("all, micro-batch 4, checkpointing off", {**best, "micro_batch": 4}),
        ("all, padded (no packing)", {**best, "batching": "padded", "attention": "sdpa"}),
    ]
    if include_liger:
        combos.append(("all + Liger RMSNorm/RoPE/SwiGLU", {**best, "liger": True}))
    combos += [
        ("all + torch.compile of each decoder layer", {**best, "compile": True}),
        ("all + compile, micro-batch 4, checkpointing off", {**best, "compile": True, "micro_batch": 4}),
        ("all + compile, checkpointing on", {**best, "compile": True, "checkpointing": True}),
    ]
    return [(name, {**SEED_RECIPE, **change}) for name, change in combos]


def load_qlora(model_dir: str, device: str):
    """The seed's 4-bit load plus LoRA, kept in bf16 (the upcast is a switch below)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    started = time.perf_counter()
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    kwargs = {"quantization_config": quant} if device.startswith("cuda") else {}
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32  # CPU bf16 matmuls crawl here
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map={"": device},
                                                 attn_implementation="sdpa", **kwargs)
    model.config.use_cache = False
    for param in model.parameters():
        param.requires_grad = False
    loaded = time.perf_counter()
    torch.manual_seed(42)
    lora = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.05, target_modules=tc.LORA_TARGETS, bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    return model, {"load_s": loaded - started, "lora_s": time.perf_counter() - loaded}


def set_upcast(model, on: bool) -> None:
    """prepare_model_for_kbit_training's cast of every non-4-bit bf16 weight to fp32 (and back: lossless)."""
    import torch

    for _name, param in model.named_parameters():
        if param.requires_grad or param.__class__.__name__ == "Params4bit":
            continue
        if on and param.dtype == torch.bfloat16:
            param.data = param.data.to(torch.float32)
        elif not on and param.dtype == torch.float32:
            param.data = param.data.to(torch.bfloat16)


def set_checkpointing(model, on: bool) -> None:
    inner = model.get_base_model()
    if on:
        inner.enable_input_require_grads()
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        inner.gradient_checkpointing_disable()


def set_attention(model, name: str) -> None:
    inner = model.get_base_model()
    try:
        inner.set_attn_implementation(name)
    except (AttributeError, ValueError):
        inner.config._attn_implementation = name


def micro_loss(model, batch: dict, selective: bool, total_labels: int):
    """Loss of one micro-batch, as its share of the optimizer step's token mean."""
    import torch
    import torch.nn.functional as F

    inner = model.get_base_model()
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if not selective:
        out = inner(**inputs, labels=labels, num_items_in_batch=total_labels, use_cache=False)
        return out.loss
    hidden = inner.model(**inputs, use_cache=False).last_hidden_state
    shifted = labels[:, 1:]
    keep = shifted != -100
    logits = inner.lm_head(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, shifted[keep], reduction="sum") / torch.tensor(total_labels, device=logits.device)


def make_micro_batches(examples: list[dict], settings: dict, pad_id: int, device: str) -> list[dict]:
    size = settings["micro_batch"]
    groups = [examples[i:i + size] for i in range(0, len(examples), size)]
    if settings["batching"] == "padded":
        return [tc.padded_batch(g, pad_id, device) for g in groups]
    batches = [tc.packed_batch(g, device, varlen=settings["batching"] == "varlen") for g in groups]
    if settings.get("compile") and settings["batching"] == "varlen":
        for batch in batches:  # a constant bound: one compiled graph for every step (flash only sizes its grid)
            batch["max_length_q"] = batch["max_length_k"] = 512
    return batches


def set_compiled(model, on: bool) -> None:
    """torch.compile each decoder layer (dynamic token count), or go back to eager."""
    import torch

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for layer in model.get_base_model().model.layers:
        if on and getattr(layer, "_compiled_call_impl", None) is None:
            layer.compile(dynamic=True)
        elif not on:
            layer._compiled_call_impl = None


def run_configuration(model, steps: list[list[dict]], settings: dict, pad_id: int, device: str,
                      warmup: int, lora_init: dict, params: int) -> dict:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in lora_init:
                param.copy_(lora_init[name])
    set_upcast(model, settings["upcast"])
    set_checkpointing(model, settings["checkpointing"])
    set_attention(model, settings["attention"])
    set_compiled(model, settings.get("compile", False))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, device)
    model.train()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    clock = tc.StepClock(warmup=warmup)
    losses = []
    for examples in steps:
        total = tc.label_count(examples)
        step_loss = torch.zeros((), device=device)
        for batch in make_micro_batches(examples, settings, pad_id, device):
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")):
                loss = micro_loss(model, batch, settings["selective"], total)
            loss.backward()
            step_loss += loss.detach()
        torch.nn.utils.clip_grad_norm_(trainable, 0.3)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss.item())  # the host waits for the step here
        real = sum(len(e["input_ids"]) for e in examples)
        padded = real if settings["batching"] != "padded" else sum(
            max(len(e["input_ids"]) for e in examples[i:i + settings["micro_batch"]]) *
            len(examples[i:i + settings["micro_batch"]]) for i in range(0, len(examples), settings["micro_batch"]))
        clock.tick(real, padded)
    del optimizer
    memory = tc.memory_figures() if device.startswith("cuda") else {"peak_allocated_gib": 0.0}
    return {**clock.figures(params), **memory, "losses": losses}


def make_optimizer(trainable: list, device: str):
    """The seed's paged 8-bit AdamW (CUDA only; plain AdamW when checking the script on a CPU)."""
    import torch

    if device.startswith("cuda"):
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(trainable, lr=2e-4, weight_decay=0.0)
    return torch.optim.AdamW(trainable, lr=2e-4, weight_decay=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps before timing starts")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per configuration, warm-up included")
    parser.add_argument("--only", default="", help="comma-separated configuration numbers (debugging)")
    parser.add_argument("--device", default="cuda", help="'cpu' only to check the script at toy size")
    parser.add_argument("--profile", type=int, default=-1, help="profile 2 steps of this configuration number")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoTokenizer

    from carexpert.estimate import load_shape

    device = args.device
    results = {"environment": tc.environment(), "settings": vars(args) | {"out": str(args.out)}, "runs": []}
    register_varlen()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    records = tc.read_records(args.data)
    random.Random(42).shuffle(records)
    examples = [tc.tokenize_record(tokenizer, r) for r in records[: args.steps * tc.SEQS_PER_STEP]]
    steps = [examples[i:i + tc.SEQS_PER_STEP] for i in range(0, len(examples), tc.SEQS_PER_STEP)]
    model, load = load_qlora(args.model, device)
    params = load_shape(args.model).total_params
    allocated = torch.cuda.memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    results["load"] = load | {"base_params": params, "after_load_allocated_gib": allocated}
    lora_init = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    try:
        import liger_kernel  # noqa: F401
        has_liger = True
    except ImportError:
        has_liger = False
    chosen = configurations(has_liger)
    if args.only:
        keep = {int(x) for x in args.only.split(",")}
        chosen = [c for i, c in enumerate(chosen) if i in keep]
    liger_applied = False
    for name, settings in chosen:
        if settings["liger"] and not liger_applied:
            from liger_kernel.transformers import apply_liger_kernel_to_mistral

            apply_liger_kernel_to_mistral(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                          fused_linear_cross_entropy=False, model=model.get_base_model())
            liger_applied = True
        entry = {"name": name, "settings": settings}
        try:
            entry.update(run_configuration(model, steps, settings, tokenizer.eos_token_id, device, args.warmup,
                                           lora_init, params))
        except Exception as error:  # noqa: BLE001 - one failing lever must not lose the others
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc(limit=6)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        results["runs"].append(entry)
        tc.write_json(args.out, results)
        print(summary_line(entry), flush=True)
    base = next((r for r in results["runs"] if "tokens_per_s" in r), None)
    print_table(results["runs"], base)
    if args.profile >= 0:
        name, settings = configurations(has_liger)[args.profile]
        results["profile"] = profile_configuration(model, steps[:3], settings, tokenizer.eos_token_id, device,
                                                   lora_init, params) | {"name": name}
        tc.write_json(args.out, results)
    return 0


def profile_configuration(model, steps, settings, pad_id, device, lora_init, params) -> dict:
    """Host time against device (kernel) time over two optimizer steps: which side bounds a step."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    run_configuration(model, steps[:1], settings, pad_id, device, 1, lora_init, params)  # warm
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        started = time.perf_counter()
        run_configuration(model, steps[1:3], settings, pad_id, device, 0, lora_init, params)
        torch.cuda.synchronize()
        wall = time.perf_counter() - started
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    device_us = sum(e.device_time for e in kernels) if kernels and hasattr(kernels[0], "device_time") else \
        sum(e.cuda_time for e in kernels)
    table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=18)
    print(table)
    print(f"profile: wall {wall:.3f}s for 2 steps, kernel time {device_us / 1e6:.3f}s, kernels {len(kernels)}")
    return {"wall_s": wall, "kernel_s": device_us / 1e6, "kernels": len(kernels), "table": table}


def summary_line(entry: dict) -> str:
    if "error" in entry:
        return f"{entry['name']}: ERROR {entry['error'][:200]}"
    return (f"{entry['name']}: {entry['tokens_per_s']:.0f} tok/s, {entry['steps_per_min']:.1f} steps/min, "
            f"peak {entry['peak_allocated_gib']:.2f} GiB, first loss {entry['losses'][0]:.5f}")


def print_table(runs: list[dict], base: dict | None) -> None:
    print(f"\n{'configuration':40} {'tok/s':>8} {'x seed':>7} {'steps/min':>9} {'MFU':>6} {'peak GiB':>8} {'loss@1':>9}")
    for r in runs:
        if "error" in r:
            print(f"{r['name']:40} ERROR")
            continue
        ratio = r["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
        print(f"{r['name']:40} {r['tokens_per_s']:8.0f} {ratio:7.2f} {r['steps_per_min']:9.1f} "
              f"{100 * r['mfu']:5.1f}% {r['peak_allocated_gib']:8.2f} {r['losses'][0]:9.5f}")


if __name__ == "__main__":
    sys.exit(main())
