"""CPU chat decoding of the embedded model: ``generate`` against the own loop's CPU steps, in one run.

Each variant answers the same prompt greedily (repetition penalty 1.1, the chat default),
``--tokens`` new tokens with EOS suppressed; the variants take turns for ``--rounds``
rounds and each keeps its best round (the machine is shared: the best round is the one
least disturbed by other work). The 1-minute load average is recorded with every round.
Variants (``--variants``, comma-separated):

- ``generate fp32``: what CPU chat did before issue 14 (``generate``, dynamic cache, fp32).
- ``loop fp32 transformers``: carexpert's own loop (``graph_decode``), eager, each step
  through the transformers forward (CPU chat before the lean step).
- ``loop fp32 lean``: the own loop with the lean Gemma 3 layers (``lean_gemma3``) and the fp32 head.
- ``loop fp32 lean screened``: the lean layers and the screened int8/fp32 head
  (``screened_head``): what CPU chat does now.
- ``loop fp32 lean screened 1 thread``: the same with ``torch.set_num_threads(1)``.
- ``loop bf16``: bf16 weights through the transformers forward (changes the answer).

Every variant's answer is compared with ``generate fp32``'s, token for token.

    python benchmarks/decode_cpu.py --out benchmarks/results/cpu-decode/NAME.json [--tokens 48 --rounds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

PROMPT = "### Instruction:\nWhat is a turbocharger and how does it differ from a supercharger?\n\n### Response:\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--variants", default="generate fp32,loop fp32 transformers,loop fp32 lean,"
                                               "loop fp32 lean screened")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from carexpert.chat.decode_step import SamplingParams
    from carexpert.chat.graph_decode import DecodeRequest, GraphDecoder
    from carexpert.config.schema import Config
    from carexpert.modeling import model_source

    name = model_source(Config())[0]
    tokenizer = AutoTokenizer.from_pretrained(name)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    wanted = args.variants.split(",")
    dtypes = [torch.float32] + ([torch.bfloat16] if "loop bf16" in wanted else [])
    models = {dtype: AutoModelForCausalLM.from_pretrained(name, dtype=dtype, attn_implementation="sdpa").eval()
              for dtype in dtypes}
    eos = models[torch.float32].generation_config.eos_token_id
    eos = frozenset([eos] if isinstance(eos, int) else eos)
    threads = torch.get_num_threads()
    request = DecodeRequest(SamplingParams(True, repetition_penalty=1.1), args.tokens, frozenset(), eos)

    def generate(model):
        def run():
            with torch.inference_mode():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                                     min_new_tokens=args.tokens, do_sample=False, repetition_penalty=1.1,
                                     pad_token_id=0)
            return out[0, ids.shape[1]:].tolist()
        return run

    def loop(model, thread_count=threads, lean=True, screened=True):
        decoder = GraphDecoder(model, 4096, graphs=False, compile_step=False)
        if not lean:
            decoder.lean = None
        if not screened:
            decoder.screen = None
        if (lean and decoder.lean is None) or (screened and decoder.screen is None):
            raise SystemExit(f"the CPU step cannot run here: {decoder.cpu_note}")

        def run():
            torch.set_num_threads(thread_count)
            try:
                return [token for token, _ in decoder.stream(ids, request)]
            finally:
                torch.set_num_threads(threads)
        return run

    fp32 = models[torch.float32]
    builders = {"generate fp32": lambda: generate(fp32),
                "loop fp32 transformers": lambda: loop(fp32, lean=False, screened=False),
                "loop fp32 lean": lambda: loop(fp32, screened=False),
                "loop fp32 lean screened": lambda: loop(fp32),
                "loop fp32 lean screened 1 thread": lambda: loop(fp32, 1),
                "loop bf16": lambda: loop(models.get(torch.bfloat16), lean=False, screened=False)}
    unknown = [name for name in wanted if name not in builders]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(builders)}")
    variants = {name: builders[name]() for name in wanted}
    for run in variants.values():  # one short untimed pass each: first-call costs out of the way
        run()
    best = {name: float("inf") for name in variants}
    outputs, rounds, differing = {}, [], set()
    for number in range(args.rounds):
        entry = {"load_average_1min": os.getloadavg()[0], "seconds": {}}
        for name, run in variants.items():
            start = time.perf_counter()
            outputs[name] = run()
            if outputs[name] != outputs.get("generate fp32", outputs[name]):
                differing.add(name)
            seconds = time.perf_counter() - start
            entry["seconds"][name] = seconds
            best[name] = min(best[name], seconds)
        rounds.append(entry)
        print(f"round {number}: load {entry['load_average_1min']:.1f} | "
              + " | ".join(f"{name} {args.tokens / s:.1f}" for name, s in entry["seconds"].items()), flush=True)
    reference = outputs.get("generate fp32")
    result = {"cpu": platform.processor() or platform.machine(), "threads": threads, "torch": torch.__version__,
              "avx512_bf16": torch.cpu._is_avx512_bf16_supported(), "amx": torch.cpu._is_amx_tile_supported(),
              "prompt_tokens": ids.shape[1], "new_tokens": args.tokens,
              "best_tokens_per_s": {name: args.tokens / s for name, s in best.items()},
              "median_tokens_per_s": {name: args.tokens / statistics.median(entry["seconds"][name] for entry in rounds)
                                      for name in variants},
              "same_tokens_as_generate_fp32": {name: reference is not None and name not in differing
                                               for name in outputs},
              "rounds": rounds, "load_average_1min_after": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("best_tokens_per_s", "same_tokens_as_generate_fp32")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
