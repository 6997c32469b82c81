"""Batch-1 chat decoding through ``carexpert.chat.ChatSession``, both GPU paths.

For ``chat.fast_path`` = '4bit' (NF4 base + the LoRA adapter, unmerged) and 'merged'
(adapter merged into bf16 weights, static cache, compiled decoding step), load a
session the way ``carexpert chat`` does (the warm-up included in the load time), ask a
question whose rendered prompt is 200 tokens, and read the session's own ``TurnStats``:
time to first token and the streaming rate after it. One untimed answer first, then
the median of two; the history is reset before each so the prompt stays 200 tokens.
Sampling is the config's default (temperature 0.7, top-p 0.9, top-k 50, repetition
penalty 1.1); the model has random weights, so an answer may end early at a sampled
EOS: the token count is recorded with each figure.

    python benchmarks/decode.py --model /dev/shm/bench/model [--adapter RUN/adapter] --out decode.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc

PROMPT_TOKENS = 200
NEW_TOKENS = 200


def write_random_adapter(folder: Path, model_dir: str, r: int = 64, seed: int = 0) -> Path:
    """A LoRA adapter (r=64 on q/k/v/o, non-zero B) in peft's format, built from the model's config alone."""
    import torch
    from safetensors.torch import save_file

    from carexpert.estimate import load_shape

    shape = load_shape(model_dir)
    dims = shape.module_dims()
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(shape.layers):
        for name in tc.LORA_TARGETS:
            fan_in, fan_out = dims[name]
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            tensors[f"{prefix}.lora_A.weight"] = (torch.randn(r, fan_in, generator=generator) / fan_in**0.5).to(torch.bfloat16)
            tensors[f"{prefix}.lora_B.weight"] = (torch.randn(fan_out, r, generator=generator) * 0.01).to(torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 16, "lora_dropout": 0.05,
              "target_modules": tc.LORA_TARGETS, "bias": "none", "base_model_name_or_path": model_dir,
              "fan_in_fan_out": False, "inference_mode": True}
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def question_of_prompt_length(session, tokens: int) -> str:
    """A question whose full rendered prompt is ``tokens`` tokens long (or the nearest below)."""
    import random

    from bench_assets import sentence

    rng = random.Random(5)
    words = " ".join(sentence(rng) for _ in range(80)).split()
    low, high = 1, len(words)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        ids, _, _ = session.prepare_prompt(" ".join(words[:middle]) + " Which should I buy?", NEW_TOKENS)
        if len(ids) <= tokens:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low]) + " Which should I buy?"


def measure_path(path: str, model_dir: str, adapter: Path, repeats: int = 2) -> dict:
    import torch

    from carexpert.chat.session import ChatSession
    from carexpert.config.schema import Config

    config = Config()
    config.model.base_model = model_dir
    config.chat.fast_path = path
    config.chat.max_new_tokens = NEW_TOKENS
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    messages: list[str] = []
    session = ChatSession(config, adapter_dir=adapter)
    started = time.perf_counter()
    session.load(progress=messages.append)
    load_s = time.perf_counter() - started
    question = question_of_prompt_length(session, PROMPT_TOKENS)
    prompt_tokens = len(session.prepare_prompt(question, NEW_TOKENS)[0])
    session.ask(question)  # untimed: first answer after loading
    stats = []
    for _ in range(repeats):
        session.reset()
        session.ask(question)
        stats.append(session.last_stats.as_dict())
    result = {"path": path, "plan": session.plan.describe(), "load_s_including_warm_up": load_s,
              "prompt_tokens": prompt_tokens, "messages": messages, "answers": stats,
              "ttft_ms": 1000 * statistics.median(s["time_to_first_token"] for s in stats),
              "tokens_per_s": statistics.median(s["tokens_per_second"] for s in stats if s["tokens_per_second"]),
              "new_tokens": [s["new_tokens"] for s in stats],
              "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0}
    del session
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", type=Path, default=Path("/tmp/carexpert-bench/runs/bench/adapter"),
                        help="a trained adapter (default: the carexpert_train.py run's); made at random if missing")
    parser.add_argument("--paths", default="4bit,merged")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    adapter = args.adapter
    if not (adapter / "adapter_config.json").is_file():
        adapter = write_random_adapter(Path("/tmp/carexpert-bench/random-adapter"), args.model)
    results = {"environment": tc.environment(), "adapter": str(adapter), "paths": {}}
    for path in args.paths.split(","):
        try:
            entry = measure_path(path, args.model, adapter)
        except Exception as error:  # noqa: BLE001 - report the failing path, measure the other
            import traceback

            entry = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=8)}
        results["paths"][path] = entry
        tc.write_json(args.out, results)
        if "error" in entry:
            print(f"{path}: ERROR {entry['error']}")
        else:
            print(f"{path}: {entry['plan']} | load {entry['load_s_including_warm_up']:.1f}s | prompt "
                  f"{entry['prompt_tokens']} tokens | TTFT {entry['ttft_ms']:.0f} ms | {entry['tokens_per_s']:.1f} tokens/s "
                  f"| new tokens {entry['new_tokens']} | peak {entry['peak_allocated_gib']:.2f} GiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
