"""Batch-1 decoding paths in plain transformers, before carexpert.chat measures them itself.

Times ``generate`` (greedy, a 200-token prompt, 200 new tokens) for: 4-bit NF4 + an
unmerged LoRA adapter with the dynamic cache, the same with a static cache (transformers
then refuses to compile a bitsandbytes model), the same with that refusal lifted
(``-forced``), the adapter merged into bf16 weights with the
dynamic cache, and merged bf16 with static cache + compile (CUDA graphs). Time to first
token and the streaming rate come from a streamer that stamps every token as it arrives.

    python benchmarks/decode_probe.py --model /dev/shm/bench/model --out benchmarks/results/decode_probe.json
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc

PROMPT_TOKENS = 200
NEW_TOKENS = 200


class StampingStreamer:
    """Records the arrival time of every generated token (the first ``put`` is the prompt)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def prompt_ids(tokenizer, device):
    """Exactly PROMPT_TOKENS ids of automotive text in carexpert's prompt format."""
    import random

    import torch
    from bench_assets import sentence

    from carexpert.prompt import render_prompt

    rng = random.Random(3)
    body = " ".join(sentence(rng) for _ in range(60))
    ids = tokenizer(render_prompt("Summarize this for a buyer.", body))["input_ids"]
    tail = tokenizer("\n\n### Response:\n", add_special_tokens=False)["input_ids"]
    ids = ids[: PROMPT_TOKENS - len(tail)] + tail
    assert len(ids) == PROMPT_TOKENS, len(ids)
    return torch.tensor([ids], device=device)


def allow_compile(model) -> None:
    """Let generate compile a bitsandbytes model: transformers' quantizer says no by default."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quantizer = getattr(base, "hf_quantizer", None)
    if quantizer is not None and not quantizer.is_compileable:
        quantizer.__class__ = type(quantizer.__class__.__name__ + "Compileable", (quantizer.__class__,),
                                   {"is_compileable": property(lambda self: True)})


def time_generate(model, ids, static: bool, repeats: int = 2, force_compile: bool = False) -> dict:
    """The best of ``repeats`` runs after a warm-up call (compilation happens in the warm-up)."""
    import torch

    kwargs = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    if force_compile:
        allow_compile(model)
    if static:
        kwargs["cache_implementation"] = "static"
    else:
        kwargs["disable_compile"] = True
    warm = time.perf_counter()
    model.generate(ids, **kwargs)
    torch.cuda.synchronize()
    first_call_s = time.perf_counter() - warm
    runs = []
    for _ in range(repeats):
        streamer = StampingStreamer()
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(ids, streamer=streamer, **kwargs)
        torch.cuda.synchronize()
        stamps = streamer.stamps
        runs.append({"ttft_ms": 1000 * (stamps[0] - start), "tokens": len(stamps),
                     "tokens_per_s": (len(stamps) - 1) / (stamps[-1] - stamps[0])})
    best = max(runs, key=lambda r: r["tokens_per_s"])
    return {**best, "first_call_s": first_call_s, "runs": runs,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}


def with_adapter(model, seed: int = 0):
    """A LoRA r=64 on q/k/v/o with non-zero B, as after training."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(model, LoraConfig(r=64, lora_alpha=16, lora_dropout=0.05,
                                             target_modules=tc.LORA_TARGETS, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--paths", default="4bit,4bit-static,merged,merged-static",
                        help="comma-separated: 4bit, 4bit-static, 4bit-static-forced, merged, merged-static")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ids = prompt_ids(tokenizer, "cuda")
    results = {"environment": tc.environment(), "prompt_tokens": ids.shape[1], "new_tokens": NEW_TOKENS, "paths": {}}
    wanted = args.paths.split(",")
    for family in ("4bit", "merged"):
        names = [p for p in wanted if p.split("-")[0] == family]
        if not names:
            continue
        torch.cuda.empty_cache()
        started = time.perf_counter()
        if family == "4bit":
            quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                       bnb_4bit_compute_dtype=torch.bfloat16)
            model = with_adapter(AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16,
                                                                      quantization_config=quant, device_map={"": 0}))
        else:
            base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, device_map={"": 0})
            model = with_adapter(base).merge_and_unload()
        load_s = time.perf_counter() - started
        for name in names:
            torch.cuda.reset_peak_memory_stats()
            try:
                entry = time_generate(model, ids, static="static" in name, force_compile=name.endswith("forced"))
            except Exception as error:  # noqa: BLE001 - report and go on to the next path
                entry = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=8)}
            entry["load_s"] = load_s
            results["paths"][name] = entry
            tc.write_json(args.out, results)
            print(name, {k: v for k, v in entry.items() if k not in ("runs", "traceback")}, flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
