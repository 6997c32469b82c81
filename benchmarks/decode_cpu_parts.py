"""Where one CPU decoding token of the embedded model goes: layers and output head, each way, interleaved.

Per-token milliseconds (median over ``--tokens`` calls, the parts taking turns for
``--rounds`` rounds, the 1-minute load average with each round) of:

- ``transformers layers``: the model's own decoder forward for one token (``GraphDecoder._last_hidden``);
- ``lean layers``: ``lean_gemma3.LeanGemma3Step.hidden`` for the same token;
- ``fp32 head + choice``: the 262k x 640 fp32 output head, the penalty and the greedy choice
  over the whole vocabulary (``GraphDecoder._choose_from_hidden``, unscreened);
- ``screened head + choice, greedy`` / ``..., top-50 sampling``: the same through
  ``screened_head`` (the int8 pass, the bound, the candidates' fp32 rows, the penalty and the
  choice over the candidates only); sampling with the chat defaults (0.7, top-p 0.9, top-k 50);
- ``int8 pass and bound``: ``ScreenedHead.screen`` alone.

Also the screen's candidates per token over a greedy answer, and the set-up time of the
decoder (lean weights and the int8 head).

    python benchmarks/decode_cpu_parts.py --out benchmarks/results/cpu-decode/parts.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from cpu_rounds import median_ms, medians_over_rounds, print_round, write_result

PROMPT = "### Instruction:\nWhat is a turbocharger and how does it differ from a supercharger?\n\n### Response:\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=30, help="calls per part and round (the median is kept)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--answer-tokens", type=int, default=48, help="greedy answer the candidates are counted on")
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
    model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, attn_implementation="sdpa").eval()
    start = time.perf_counter()
    decoder = GraphDecoder(model, 4096, graphs=False, compile_step=False)
    set_up_s = time.perf_counter() - start
    if decoder.lean is None or decoder.screen is None:
        raise SystemExit(f"the lean CPU step cannot run here: {decoder.cpu_note}")

    candidates = []
    greedy = DecodeRequest(SamplingParams(True, repetition_penalty=1.1), args.answer_tokens, frozenset())
    for _ in decoder.stream(ids, greedy):
        candidates.append(decoder.screen.candidate_count)
    candidates = candidates[1:]  # the first token comes from the prefill's full head

    with torch.inference_mode():
        cache = decoder.live_cache
        position = int(cache.position)
        cache.visible = position + 1
        hidden = decoder.lean.hidden(decoder.token, position, cache)
        greedy_params = SamplingParams(True, repetition_penalty=1.1)
        sampled_params = SamplingParams(False, 0.7, 0.9, 50, 1.1)
        choose = decoder._choose_from_hidden
        parts = {
            "transformers layers": lambda: decoder._last_hidden(decoder.token),
            "lean layers": lambda: decoder.lean.hidden(decoder.token, position, cache),
            "fp32 head + choice": lambda: choose(hidden, greedy_params, screened=False),
            "screened head + choice, greedy": lambda: choose(hidden, greedy_params, screened=True),
            "screened head + choice, top-50 sampling": lambda: choose(hidden, sampled_params, screened=True),
            "int8 pass and bound": lambda: decoder.screen.screen(hidden),
        }
        rounds = []
        for number in range(args.rounds):
            entry = {"load_average_1min": os.getloadavg()[0], "ms": {}}
            for label, call in parts.items():
                entry["ms"][label] = median_ms(call, args.tokens)
            rounds.append(entry)
            print_round(number, entry)

    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "decoder_set_up_s": set_up_s,
              "median_ms_over_rounds": medians_over_rounds(rounds),
              "screen_candidates_per_token": {"min": min(candidates), "median": statistics.median(candidates),
                                              "max": max(candidates), "tokens": len(candidates)},
              "rounds": rounds, "load_average_1min_after": os.getloadavg()[0]}
    write_result(args.out, result, ("decoder_set_up_s", "median_ms_over_rounds", "screen_candidates_per_token"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
