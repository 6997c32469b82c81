"""Chat decoding without cliffs, measured in one command on a GPU (issue 14).

1. Embedded Gemma 3 270M through ``carexpert.chat.ChatSession`` (``chat.fast_path =
   'merged'``, the config's default sampling): load (the CUDA-graph recording included),
   then a set of 20 answers, the first one right after loading, of 16 to 2,000 new tokens
   (past Gemma 3's 512-token sliding window), then three 256-token answers whose median is
   the steady state. Every answer starts from an empty history (a ~40-token prompt). EOS
   is suppressed and the chat's stop strings are off so each answer has its full length;
   tokens/s is the session's own ``TurnStats`` rate after the first token, the first
   token's latency its ``time_to_first_token`` (prompt encoding, prefill, first draw).
2. Check: the recorded loop's greedy output equals plain ``generate``'s token for token
   (600 tokens from a 39-token prompt, past the window) for the embedded model in fp32
   (where both sides' arithmetic agrees closely enough for an exact comparison), and how
   long the bf16 chat model's greedy answers agree (information: bf16 with fused kernels
   can part ways at a near-tie).
3. Mistral-7B shape with random bf16 weights built in memory (no checkpoint on disk):
   the merged path (bf16 weights) and the 4-bit path (NF4 base + an r=64 LoRA adapter
   on q/k/v/o, unmerged), each through ``fast.start_own_loop`` + ``stream_token_ids``
   (the chat engine's entry points): a 200-token prompt, three answers of 200 tokens,
   median tokens/s and first-token latency.

Stages after the first are skipped (and said) when ``--deadline`` seconds would pass.
Writes ``decode_cliffs.json`` under ``--out`` and prints a table.

    python benchmarks/decode_cliffs.py --out "$OUT/decode_cliffs"            # on the GPU machine
    python benchmarks/decode_cliffs.py --out /tmp/cliffs --quick            # CPU smoke test of the script
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import train_common as tc

SET_LENGTHS = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 600, 700, 800, 1000, 1200, 1400, 1600, 1800, 2000]
STEADY_LENGTH, STEADY_REPEATS = 256, 3
QUESTION = "Explain, step by step, how a turbocharger works and how it differs from a supercharger."
CHECK_PROMPT = ("### Instruction:\nExplain in detail how a modern turbocharged petrol engine works, "
                "covering intake, compression and exhaust.\n\n### Response:\n")
CHECK_TOKENS = 600
SEVEN_B_PROMPT, SEVEN_B_TOKENS, SEVEN_B_REPEATS = 200, 200, 3


class Clock:
    def __init__(self, deadline_s: float):
        self.start, self.deadline = time.perf_counter(), deadline_s

    def left(self) -> float:
        return self.deadline - (time.perf_counter() - self.start)


def embedded_chat(quick: bool) -> dict:
    """The 20-answer set and the steady state through ChatSession, on the embedded model."""
    import torch

    import carexpert.chat.engine as engine_module
    from carexpert.chat import ChatSession
    from carexpert.config.schema import Config

    engine_module.stop_strings = list  # no stop strings, full-length answers: the chat's stop strings would cut some short
    config = Config()
    config.chat.fast_path = "merged"
    messages: list[str] = []
    session = ChatSession(config, base_only=True)
    started = time.perf_counter()
    session.load(progress=messages.append)
    load_s = time.perf_counter() - started
    eos = session.model.generation_config.eos_token_id
    session.model.generation_config.suppress_tokens = [eos] if isinstance(eos, int) else list(eos)
    lengths = [16, 24, 40] if quick else SET_LENGTHS

    def answer(length: int) -> dict:
        session.reset()
        session.sampling.max_new_tokens = length
        session.ask(QUESTION)
        stats = session.last_stats
        return {"requested": length, "new_tokens": stats.new_tokens, "prompt_tokens": stats.prompt_tokens,
                "tokens_per_s": stats.tokens_per_second, "ttft_ms": 1000 * stats.time_to_first_token,
                "finish_reason": stats.finish_reason}

    from carexpert.chat.graph_decode import decoder_for

    decoder = decoder_for(session.model)
    before = decoder.answers if decoder else 0
    answers = [answer(length) for length in lengths]
    steady_runs = [answer(24 if quick else STEADY_LENGTH) for _ in range(STEADY_REPEATS)]
    through_loop = (decoder.answers - before) if decoder else 0
    steady = statistics.median(run["tokens_per_s"] for run in steady_runs)
    for entry in answers:
        entry["of_steady"] = entry["tokens_per_s"] / steady
    result = {"plan": session.plan.describe(), "load_s_including_recording": load_s, "messages": messages,
              "answers_through_own_loop": f"{through_loop} of {len(answers) + len(steady_runs)}",
              "sampling": session.sampling.as_dict(), "answers": answers, "steady_runs": steady_runs,
              "steady_tokens_per_s": steady, "min_of_steady": min(a["of_steady"] for a in answers),
              "first_answer_of_steady": answers[0]["of_steady"],
              "ttft_ms_median": statistics.median(a["ttft_ms"] for a in answers + steady_runs),
              "ttft_ms_max": max(a["ttft_ms"] for a in answers + steady_runs),
              "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0}
    result["bf16_greedy_agreement"] = bf16_agreement(session, quick)
    return result


def greedy_reference(model, ids, tokens: int) -> list[int]:
    import torch

    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=tokens,
                             min_new_tokens=tokens, repetition_penalty=1.0, pad_token_id=0, disable_compile=True,
                             cache_implementation="dynamic")
    return out[0, ids.shape[1]:].tolist()


def own_greedy(decoder, ids, tokens: int, eos: frozenset[int]) -> list[int]:
    from carexpert.chat.decode_step import SamplingParams
    from carexpert.chat.graph_decode import DecodeRequest

    request = DecodeRequest(SamplingParams(True), tokens, frozenset(), suppress_tokens=eos)  # generate's min_new_tokens
    return [token for token, _ in decoder.stream(ids, request)]


def eos_ids(model) -> frozenset[int]:
    eos = model.generation_config.eos_token_id
    return frozenset([eos] if isinstance(eos, int) else eos or [])


def agreement(a: list[int], b: list[int]) -> int:
    """How many leading tokens two answers share."""
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def bf16_agreement(session, quick: bool) -> dict:
    """Greedy: the chat's recorded loop against plain generate on the same bf16 model (information only)."""
    from carexpert.chat.graph_decode import decoder_for

    decoder = decoder_for(session.model)
    if decoder is None:
        return {"skipped": "no own decoder attached (the plan fell back to generate)"}
    tokens = 40 if quick else CHECK_TOKENS
    ids = session.tokenizer(CHECK_PROMPT, return_tensors="pt")["input_ids"].to(session.model.device)
    reference = greedy_reference(session.model, ids, tokens)
    mine = own_greedy(decoder, ids, tokens, eos_ids(session.model))
    return {"prompt_tokens": ids.shape[1], "tokens": tokens, "agreeing_prefix": agreement(reference, mine)}


def exact_check(quick: bool, clock: Clock) -> dict:
    """fp32 embedded model: the recorded loop (eager, then compiled if time allows) against plain generate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from carexpert.chat.graph_decode import GraphDecoder
    from carexpert.config.schema import Config
    from carexpert.modeling import model_source

    name = model_source(Config())[0]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32, attn_implementation="sdpa").to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(name)
    ids = tokenizer(CHECK_PROMPT, return_tensors="pt")["input_ids"].to(device)
    tokens = 40 if quick else CHECK_TOKENS
    reference = greedy_reference(model, ids, tokens)
    result = {"prompt_tokens": ids.shape[1], "tokens": tokens, "sliding_window": model.config.sliding_window,
              "variants": {}}
    graphs = device == "cuda"
    for compile_step in ((False, True) if graphs else (False,)):
        if compile_step and clock.left() < 60:
            result["variants"]["compiled forward"] = {"skipped": f"deadline: {clock.left():.0f} s left"}
            continue
        decoder = GraphDecoder(model, 1024 if quick else 4096, graphs=graphs, compile_step=compile_step)
        mine = own_greedy(decoder, ids, tokens, eos_ids(model))
        result["variants"][decoder.describe()] = {"equal": mine == reference,
                                                  "agreeing_prefix": agreement(reference, mine),
                                                  "compile_error": decoder.compile_error}
    result["equal"] = all(v["equal"] for v in result["variants"].values() if "equal" in v)
    del model
    return result


def random_mistral(shape: str, four_bit: bool):
    """A Mistral-shaped model with random bf16 weights on the GPU; 4-bit: NF4 layers + an r=64 LoRA adapter."""
    import torch
    from bench_assets import SHAPES
    from transformers import MistralConfig, MistralForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = MistralConfig(bos_token_id=1, eos_token_id=2, pad_token_id=None, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):  # transformers' own init (N(0, 0.02), norms at 1), run on the GPU
        model = MistralForCausalLM._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.generation_config.eos_token_id = 2
    if four_bit:
        model = quantize_nf4(model, device)
        model = with_adapter(model)
    return model.eval()


def quantize_nf4(model, device: str):
    """Swap every decoder-layer Linear for bitsandbytes' NF4 Linear4bit (double quant, bf16 compute), as QLoRA loads."""
    import bitsandbytes as bnb
    import torch

    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear):
                    quantized = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=False,
                                                  compute_dtype=torch.bfloat16, compress_statistics=True,
                                                  quant_type="nf4", device="meta")
                    quantized.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False,
                                                         compress_statistics=True, quant_type="nf4")
                    setattr(parent, child_name, quantized.to(device))
                    del child
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return model


def with_adapter(model, r: int = 64):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)
    return model


class IdTokenizer:
    """Enough of a tokenizer for ``start_own_loop``'s warm-up prompt on a model with no real tokenizer."""

    def __call__(self, text, return_tensors=None):
        import torch

        return {"input_ids": torch.randint(3, 32000, (1, 24), generator=torch.Generator().manual_seed(1))}


def seven_b(path: str, quick: bool) -> dict:
    """One Mistral-7B-shaped path through the chat engine's entry points."""
    import torch
    from transformers import GenerationConfig

    from carexpert.chat.fast import STATIC_CACHE_TOKENS, DecodePlan, start_own_loop
    from carexpert.chat.sampling import SamplingSettings
    from carexpert.chat.streaming import stream_token_ids

    started = time.perf_counter()
    model = random_mistral("tiny" if quick else "mistral-7b", four_bit=path == "4bit")
    built_s = time.perf_counter() - started
    cuda = torch.cuda.is_available()
    plan = DecodePlan(path, "cuda" if cuda else "cpu", True, True, "benchmark", "graph" if cuda else "loop")
    sampling = SamplingSettings()
    messages: list[str] = []
    started = time.perf_counter()
    plan = start_own_loop(model, IdTokenizer(), plan, messages.append, max_cache_len=STATIC_CACHE_TOKENS,
                          sampling=sampling)
    record_s = time.perf_counter() - started
    new_tokens = 24 if quick else SEVEN_B_TOKENS
    generation = GenerationConfig(**{**sampling.generation_overrides(), "max_new_tokens": new_tokens},
                                  eos_token_id=2, pad_token_id=0, suppress_tokens=[2])
    ids = torch.randint(3, 32000, (1, SEVEN_B_PROMPT), generator=torch.Generator().manual_seed(2))
    ids = ids.to(next(model.parameters()).device)
    from carexpert.chat.graph_decode import decoder_for

    decoder = decoder_for(model)
    before = decoder.answers if decoder else 0
    runs = []
    for _ in range(SEVEN_B_REPEATS + 1):  # the first answer counts too: no untimed warm-up answer
        start = time.perf_counter()
        stamps = [moment for _, moment in stream_token_ids(model, ids, generation, threading.Event())]
        runs.append({"tokens": len(stamps), "ttft_ms": 1000 * (stamps[0] - start),
                     "tokens_per_s": (len(stamps) - 1) / (stamps[-1] - stamps[0])})
    through_loop = (decoder.answers - before) if decoder else 0
    result = {"plan": plan.describe(), "messages": messages, "build_s": built_s, "record_s": record_s,
              "answers_through_own_loop": f"{through_loop} of {len(runs)}",
              "prompt_tokens": SEVEN_B_PROMPT, "runs": runs,
              "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
              "ttft_ms": statistics.median(r["ttft_ms"] for r in runs),
              "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0}
    from carexpert.chat.graph_decode import detach

    del decoder
    detach(model)
    del model
    if cuda:
        torch.cuda.empty_cache()
    return result


def stage(results: dict, name: str, clock: Clock, needs_s: float, fn, *args) -> None:
    if clock.left() < needs_s:
        results[name] = {"skipped": f"deadline: {clock.left():.0f} s left, this stage needs about {needs_s:.0f} s"}
        print(f"{name}: skipped ({results[name]['skipped']})", flush=True)
        return
    started = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as error:  # noqa: BLE001 - report the failing stage, run the others
        results[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=12)}
        print(f"{name}: ERROR {results[name]['error']}", flush=True)
    results[name]["stage_s"] = time.perf_counter() - started
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def print_table(results: dict) -> None:
    chat = results.get("embedded")
    if chat and "answers" in chat:
        print(f"\nembedded model: {chat['plan']} ({chat['answers_through_own_loop']} answers through the own loop)\nload {chat['load_s_including_recording']:.1f} s | steady "
              f"{chat['steady_tokens_per_s']:.0f} tokens/s | first answer {chat['first_answer_of_steady']:.0%} "
              f"of steady | worst answer {chat['min_of_steady']:.0%} | first token median "
              f"{chat['ttft_ms_median']:.1f} ms, max {chat['ttft_ms_max']:.1f} ms")
        print("  new tokens: " + " ".join(f"{a['new_tokens']}" for a in chat["answers"]))
        print("  tokens/s:   " + " ".join(f"{a['tokens_per_s']:.0f}" for a in chat["answers"]))
        print(f"  bf16 greedy agreement with generate: {chat.get('bf16_greedy_agreement')}")
    check = results.get("check")
    if check and "variants" in check:
        print(f"\ngreedy = generate (fp32, {check['tokens']} tokens, window {check['sliding_window']}): "
              f"{'PASS' if check['equal'] else 'FAIL'}")
        for name, entry in check["variants"].items():
            if "skipped" in entry:
                print(f"  {name}: skipped ({entry['skipped']})")
                continue
            print(f"  {name}: equal={entry['equal']} agreeing prefix {entry['agreeing_prefix']}"
                  + (f" compile error: {entry['compile_error']}" if entry["compile_error"] else ""))
    for path in ("7b_merged", "7b_4bit"):
        entry = results.get(path)
        if entry and "runs" in entry:
            print(f"\nMistral-7B shape, {path[3:]}: {entry['plan']} ({entry['answers_through_own_loop']} answers "
                  f"through the own loop)\n  {entry['tokens_per_s']:.1f} tokens/s, first "
                  f"token {entry['ttft_ms']:.0f} ms (median of {len(entry['runs'])}; first answer "
                  f"{entry['runs'][0]['tokens_per_s']:.1f} tokens/s) | build {entry['build_s']:.0f} s, record "
                  f"{entry['record_s']:.0f} s | peak {entry['peak_allocated_gib']:.1f} GiB")
    for name, entry in results.items():
        if isinstance(entry, dict) and ("error" in entry or "skipped" in entry):
            print(f"{name}: {entry.get('error') or entry.get('skipped')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for decode_cliffs.json")
    parser.add_argument("--deadline", type=float, default=230, help="seconds; later stages are skipped past it")
    parser.add_argument("--stages", default="embedded,check,7b_merged,7b_4bit")
    parser.add_argument("--quick", action="store_true", help="short answers and a toy 7B shape (CPU smoke test)")
    args = parser.parse_args(argv)
    clock = Clock(args.deadline)
    results: dict = {"environment": tc.environment(), "deadline_s": args.deadline}
    wanted = args.stages.split(",")
    plan = [("embedded", 0, embedded_chat, args.quick), ("check", 25, exact_check, args.quick, clock),
            ("7b_merged", 50, seven_b, "merged", args.quick), ("7b_4bit", 60, seven_b, "4bit", args.quick)]
    for name, needs, fn, *fn_args in plan:
        if name in wanted:
            stage(results, name, clock, needs, fn, *fn_args)
            tc.write_json(args.out / "decode_cliffs.json", results)
    results["total_s"] = time.perf_counter() - clock.start
    tc.write_json(args.out / "decode_cliffs.json", results)
    print_table(results)
    print(f"\ntotal {results['total_s']:.0f} s; results in {args.out / 'decode_cliffs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
