"""Benchmark inputs built from nothing: a tokenizer, a synthetic dataset, a random model.

The GPU machine reaches no network, so the Mistral-7B-shaped model is created from its
config with random weights (fine for speed and memory, meaningless for answers), the
tokenizer is a byte-level BPE trained on the synthetic corpus (Mistral's ids: <unk>=0,
<s>=1, </s>=2, BOS added), and the dataset is an Alpaca JSONL whose token lengths follow a
fixed mix: every record is cut to a target length drawn once from a seeded generator, so
the baseline and carexpert see the same sequences, with the same lengths, in every run.

    python benchmarks/bench_assets.py --out /dev/shm/bench --shape mistral-7b --device cuda
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

SHAPES = {
    # Mistral-7B-v0.1's shape (sliding window off: it never applies at <= 512 tokens).
    "mistral-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                       rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False),
    # Same code paths at toy size, for checking the scripts on a CPU.
    "tiny": dict(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                 rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False),
}

# Token-length mix of a training record (prompt + answer + EOS): mean ~245, 5th-95th
# percentile ~120-370, clipped to [96, 480]; the builtin set's answers are of this order.
LENGTH_MEAN, LENGTH_SD, LENGTH_MIN, LENGTH_MAX = 245, 75, 96, 480

_MAKES = ["Toyota", "Honda", "Ford", "Chevrolet", "BMW", "Audi", "Mercedes-Benz", "Hyundai", "Kia", "Mazda",
          "Subaru", "Volkswagen", "Tesla", "Porsche", "Volvo", "Nissan", "Lexus", "Rivian", "Jeep", "Ram"]
_MODELS = ["Camry", "Accord", "F-150", "Silverado", "3 Series", "A4", "C-Class", "Tucson", "Sportage", "CX-5",
           "Outback", "Golf", "Model 3", "911", "XC90", "Leaf", "RX", "R1T", "Wrangler", "1500"]
_TOPICS = ["turbocharger boost", "timing belt replacement", "brake pad wear", "tire pressure", "regenerative braking",
           "dual-clutch gearbox", "adaptive cruise control", "lane keeping assist", "battery thermal management",
           "all-wheel drive", "oil change interval", "fuel economy", "towing capacity", "crash test ratings",
           "DC fast charging", "direct injection", "hybrid synergy drive", "torque vectoring", "coolant flush",
           "spark plug gap"]
_CLAUSES = [
    "the {make} {model} makes {hp} horsepower and {tq} lb-ft of torque",
    "{topic} matters most when the car is driven hard in hot weather",
    "most owners of a {make} should check the {topic} every {miles} miles",
    "a {year} {make} {model} reaches 60 mph in about {sec} seconds",
    "the manual lists {topic} under routine maintenance at {miles} miles",
    "compared with the {model}, the {make} rival is roomier but slower",
    "engineers tuned the {topic} for comfort rather than outright speed",
    "expect roughly {mpg} mpg combined from the {year} {model}",
    "dealers charge about ${price} for {topic} on a {make}",
    "independent shops often do {topic} for less than the dealer",
]


def sentence(rng: random.Random) -> str:
    """One plausible automotive sentence."""
    text = rng.choice(_CLAUSES).format(
        make=rng.choice(_MAKES), model=rng.choice(_MODELS), topic=rng.choice(_TOPICS),
        hp=rng.randint(120, 700), tq=rng.randint(110, 650), miles=rng.choice([3000, 5000, 7500, 10000, 30000, 60000]),
        year=rng.randint(2012, 2026), sec=round(rng.uniform(2.5, 9.5), 1), mpg=rng.randint(18, 58),
        price=rng.randint(80, 1400))
    return text[0].upper() + text[1:] + "."


def target_lengths(count: int, seed: int = 1234) -> list[int]:
    """The fixed token-length mix: ``count`` lengths from a clipped normal."""
    rng = random.Random(seed)
    return [min(LENGTH_MAX, max(LENGTH_MIN, round(rng.gauss(LENGTH_MEAN, LENGTH_SD)))) for _ in range(count)]


def build_tokenizer(folder: Path, corpus: list[str], vocab_size: int = 32000):
    """A byte-level BPE with Mistral's special-token ids, adding <s> like Mistral's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")
    fast.save_pretrained(folder)
    return fast


def build_dataset(path: Path, tokenizer, count: int, seed: int = 1234) -> dict:
    """Alpaca records whose full training text (prompt + answer + EOS) has the target token length."""
    from carexpert.prompt import render_prompt

    rng = random.Random(seed + 1)
    lengths = target_lengths(count, seed)
    records, achieved = [], []
    for index, target in enumerate(lengths):
        instruction = f"What should I know about {rng.choice(_TOPICS)} on the {rng.choice(_MAKES)} {rng.choice(_MODELS)}?"
        prompt_ids = tokenizer(render_prompt(instruction))["input_ids"]
        budget = max(8, target - len(prompt_ids) - 1)  # leave room for EOS
        words: list[str] = []
        while len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) < budget:
            words.extend(sentence(rng).split())
        answer_ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][:budget]
        answer = tokenizer.decode(answer_ids).strip()
        records.append({"id": f"bench-{index:05d}", "instruction": instruction, "input": "", "output": answer,
                        "category": "specs"})
        full = render_prompt(instruction) + answer
        achieved.append(len(tokenizer(full)["input_ids"]) + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    ordered = sorted(achieved)
    return {"records": count, "mean_tokens": sum(achieved) / count, "min_tokens": ordered[0],
            "p50_tokens": ordered[count // 2], "p95_tokens": ordered[int(count * 0.95)], "max_tokens": ordered[-1]}


def build_random_checkpoint(folder: Path, shape: str, device: str, seed: int = 0) -> dict:
    """Write a model of ``shape`` with N(0, 0.02) weights (norms at 1) as bf16 safetensors.

    Built on the meta device and materialized on ``device`` (a GPU fills 7B parameters in
    well under a second), then saved; returns the seconds each part took.
    """
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(bos_token_id=1, eos_token_id=2, pad_token_id=None, **SHAPES[shape])
    config.dtype = "bfloat16"
    start = time.perf_counter()
    with torch.device("meta"):
        model = MistralForCausalLM(config)
    model = model.to(dtype=torch.bfloat16).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    made = time.perf_counter()
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="5GB")
    saved = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"params": params, "init_s": made - start, "save_s": saved - made}


def build_all(out: Path, shape: str, device: str, records: int) -> dict:
    """Tokenizer + dataset + checkpoint under ``out`` (model/ and data.jsonl); returns a summary."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    corpus = [" ".join(sentence(rng) for _ in range(8)) for _ in range(4000)]
    from carexpert.prompt import SYSTEM_PROMPT, render_prompt

    corpus.append(render_prompt("What is torque?", "Some input") + SYSTEM_PROMPT)
    model_dir = out / "model"
    started = time.perf_counter()
    tokenizer = build_tokenizer(model_dir, corpus)
    data = build_dataset(out / "data.jsonl", tokenizer, records)
    data["build_s"] = time.perf_counter() - started
    checkpoint = build_random_checkpoint(model_dir, shape, device)
    summary = {"shape": shape, "tokenizer_vocab": len(tokenizer), "dataset": data, "checkpoint": checkpoint,
               "model_dir": str(model_dir), "data_path": str(out / "data.jsonl")}
    (out / "assets.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mistral-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--records", type=int, default=1600)
    args = parser.parse_args(argv)
    summary = build_all(args.out, args.shape, args.device, args.records)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
