"""Do the CPU step's answers equal the fp32 reference on the embedded model? Longer answers, several prompts.

For each prompt: a greedy answer (repetition penalty 1.1, EOS suppressed) from
``generate`` fp32 and from the own loop's CPU step (lean Gemma 3 layers + screened
head), compared token for token; and seeded top-k sampling (the chat defaults:
temperature 0.7, top-p 0.9, top-k 50) from the CPU step against the own loop's
transformers step with the full fp32 head (``generate`` draws differently), same seed.
One prompt is long enough that prompt + answer cross Gemma 3's 512-token sliding window.
Writes where the first difference is, if any.

    python benchmarks/decode_cpu_equal.py --out benchmarks/results/cpu-decode/equal.json [--tokens 160]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

QUESTIONS = [
    "What is a turbocharger and how does it differ from a supercharger?",
    "How often should I change the oil in a 2019 Toyota Camry?",
    "Compare the Honda Accord and the Toyota Camry on fuel economy.",
    "What does adaptive cruise control do?",
]
PASSAGE = ("The 2021 Toyota Camry LE has a 2.5-liter four-cylinder engine making 203 horsepower and 184 lb-ft "
           "of torque, an eight-speed automatic transmission and front-wheel drive; EPA estimates are 28 mpg "
           "city and 39 mpg highway. ")


def prompt(question: str, context: str = "") -> str:
    return f"### Instruction:\n{context}{question}\n\n### Response:\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=160)
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from carexpert.chat.decode_step import SamplingParams
    from carexpert.chat.graph_decode import DecodeRequest, GraphDecoder
    from carexpert.config.schema import Config
    from carexpert.modeling import model_source

    name = model_source(Config())[0]
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, attn_implementation="sdpa").eval()
    eos = model.generation_config.eos_token_id
    eos = frozenset([eos] if isinstance(eos, int) else eos)
    lean = GraphDecoder(model, 4096, graphs=False, compile_step=False)
    if lean.lean is None or lean.screen is None:
        raise SystemExit(f"the lean CPU step cannot run here: {lean.cpu_note}")
    plain = GraphDecoder(model, 4096, graphs=False, compile_step=False)
    plain.lean = plain.screen = None

    texts = [prompt(q) for q in QUESTIONS] + [prompt(QUESTIONS[0], PASSAGE * 9)]
    greedy = DecodeRequest(SamplingParams(True, repetition_penalty=1.1), args.tokens, frozenset(), eos)
    sampled = DecodeRequest(SamplingParams(False, 0.7, 0.9, 50, 1.1), args.tokens, frozenset(), eos)
    results = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            reference = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                                       min_new_tokens=args.tokens, do_sample=False, repetition_penalty=1.1,
                                       pad_token_id=0)[0, ids.shape[1]:].tolist()
        started = time.perf_counter()
        own = [token for token, _ in lean.stream(ids, greedy)]
        seconds = time.perf_counter() - started
        draws = {seed: ([t for t, _ in lean.stream(ids, sampled, seed=seed)],
                        [t for t, _ in plain.stream(ids, sampled, seed=seed)]) for seed in (1, 2)}
        entry = {"prompt_tokens": ids.shape[1], "crosses_sliding_window": ids.shape[1] + args.tokens > 512,
                 "greedy_equal": own == reference,
                 "greedy_first_difference": next((i for i, (a, b) in enumerate(zip(own, reference)) if a != b), None),
                 "sampled_equal_by_seed": {seed: a == b for seed, (a, b) in draws.items()},
                 "lean_tokens_per_s": args.tokens / seconds}
        results.append(entry)
        print(json.dumps(entry), flush=True)
    summary = {"new_tokens": args.tokens, "all_greedy_equal": all(r["greedy_equal"] for r in results),
               "all_sampled_equal": all(all(r["sampled_equal_by_seed"].values()) for r in results),
               "load_average_1min_after": os.getloadavg()[0], "prompts": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: summary[k] for k in ("all_greedy_equal", "all_sampled_equal")}))
    return 0 if summary["all_greedy_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
