"""Evaluation speed on the four sides (base / tuned, closed-book / with retrieval).

Asks the builtin held-out questions (the set ``carexpert eval`` asks: the test split and the
showcase) on every side through ``carexpert.evaluation.evaluate_model``, exactly as an
evaluation does (base sides first, then the tuned sides with the adapter merged into the
weights unless the base is quantized), and times each side and the two validation losses.
Then it answers the tuned + retrieval questions again with the adapter *unmerged*, timed and
scored, and counts how many answers are identical to the merged ones (bf16 merged weights round
differently from the unmerged sum, so a few greedy answers may part ways: the score says whether
that matters). Unless ``--skip-unsorted``, it also answers the tuned + retrieval prompts without
sorting them by length, to measure what sorting saves. It counts the prompt tokens a batched
run pushes through the model, padding included, sorted and unsorted.

The adapter is a fresh LoRA (r=64 on ``lora.target_modules``, lora_B small and random, so it costs what a
trained adapter costs) unless ``--adapter`` names a trained run's adapter folder. Passages
come from the knowledge store (``carexpert.retrieval.open_retriever``) when this carexpert
has it, else from a stand-in with the same shape: for each question, the rows of the
vehicles it names (every figure in every unit), the concept or topic it is about, and
distractor rows up to ``retrieval.top_k`` passages.

    # CPU, the tiny test model (what CI machines can run; a few minutes on 2 cores):
    python benchmarks/eval_sides.py --model tiny --items 64 --max-new-tokens 32 --batch-size 16 \\
        --out benchmarks/results/eval_sides_cpu_tiny.json
    # GPU, the embedded model, the whole builtin test set, the shipped eval settings (auto batch
    # = 256, max_new_tokens 384), a trained adapter if you have one (else a fresh random one):
    python benchmarks/eval_sides.py --model embedded --skip-unsorted --adapter RUN/adapter \
        --out eval_sides_gpu.json

Prints one line per side (seconds, answers, generated tokens, tokens/s), the unmerged pass
against the merged one, and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded", help="'tiny' (the test model, built here), 'embedded', "
                                                            "or a base_model value")
    parser.add_argument("--adapter", default=None, help="a trained adapter folder (default: a fresh one)")
    parser.add_argument("--items", type=int, default=0, help="first N held-out questions (0 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: eval.max_new_tokens")
    parser.add_argument("--batch-size", type=int, default=None, help="default: eval.batch_size (0 = auto)")
    parser.add_argument("--quantization", default=None, help="default: model.quantization of the config")
    parser.add_argument("--skip-unsorted", action="store_true", help="do not time the unsorted pass")
    parser.add_argument("--skip-unmerged", action="store_true",
                        help="do not answer tuned + retrieval again with the adapter unmerged")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    return parser.parse_args(argv)


def stand_in_retriever(knowledge, top_k: int, seed: int = 0):
    """Passages with the knowledge store's shape, for a carexpert without the store."""
    from carexpert.dataset.vehicle_text import vehicle_reference
    from carexpert.evaluation.figures import named_in
    from carexpert.retrieval import Hit, Passage, Retrieval

    def vehicle_passage(v) -> Passage:
        figures = ", ".join(f"{key.replace('_', ' ')} {text}" for key, (_, text) in vehicle_reference(v).items())
        text = (f"{v.model_year} {v.make} {v.model} {v.trim}: {v.body}, {v.engine}, {v.transmission}, "
                f"{v.drivetrain}. {figures or 'figures not published'}.")
        return Passage(v.id, "vehicle", f"{v.model_year} {v.make} {v.model} {v.trim}", text)

    topics = {c.id: Passage(f"concept:{c.id}", "concept", c.id, f"{c.id}: {c.summary} {c.explanation}")
              for c in (*knowledge.concepts, *knowledge.buying_topics)}
    rng = random.Random(seed)

    class StandIn:
        def retrieve(self, question: str) -> Retrieval:
            named = [v for v in knowledge.vehicles if named_in(question, v)][:top_k]
            hits = [Hit(vehicle_passage(v), 10.0, "entity") for v in named]
            words = set(question.lower().replace("?", " ").split())
            hits += [Hit(p, 5.0, "text") for p in topics.values() if set(p.title.split("-")) <= words][:1]
            while len(hits) < top_k:
                hits.append(Hit(vehicle_passage(rng.choice(knowledge.vehicles)), 1.0, "text"))
            return Retrieval(question, tuple(hits[:top_k]))

    return StandIn()


def load(args: argparse.Namespace, config, workdir: Path):
    """(model with adapter, tokenizer) the way evaluate_run loads them."""
    from peft import LoraConfig, get_peft_model

    if args.model == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_model import build_tiny_model

        config.model.base_model = str(build_tiny_model(workdir / "tiny"))
        config.model.quantization = "none"
    elif args.model != "embedded":
        config.model.base_model = args.model
    if args.quantization:
        config.model.quantization = args.quantization
    from carexpert.modeling import load_for_inference

    adapter = Path(args.adapter) if args.adapter else None
    if adapter is None:  # a fresh adapter on the base as evaluation loads it, saved, then loaded like a run's
        import torch

        base, _ = load_for_inference(config)
        torch.manual_seed(0)
        lora = LoraConfig(r=64, lora_alpha=16, target_modules=list(config.lora.target_modules))
        peft_model = get_peft_model(base, lora)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.01)
        adapter = workdir / "adapter"
        peft_model.save_pretrained(adapter)
        del base, peft_model
    return load_for_inference(config, adapter_dir=adapter)


def unmerged_pass(model, tokenizer, cases, config, retriever, summary: dict, items: list[dict]) -> dict:
    """The tuned + retrieval side again with the adapter unmerged: seconds, answers identical to the
    merged pass's, and both scores (the same scoring as the evaluation)."""
    from carexpert.evaluation.generate import build_prompts
    from carexpert.evaluation.retrieve import retrieve_all
    from carexpert.evaluation.runner import _side_answers, score_all

    retrievals, _ = retrieve_all(retriever, cases, guard=config.retrieval.guard)
    prompts = build_prompts([(c.question, c.input) for c in cases], config.chat.system_prompt,
                            [r.texts for r in retrievals])
    started = time.perf_counter()
    answers = _side_answers(model, tokenizer, prompts, retrievals, config, "tuned_rag_unmerged", None, None)
    seconds = time.perf_counter() - started
    _, scores = score_all(cases, {"tuned_rag": answers}, config.eval.numeric_tolerance,
                          [r.hits for r in retrievals], [r.unknown for r in retrievals])
    unmerged = scores["overall"]["tuned_rag"]
    merged = summary["overall"]["tuned_rag"]
    return {"seconds": round(seconds, 2), "answers": len(answers),
            "identical": sum(1 for a, item in zip(answers, items) if a.text == item["tuned_rag_answer"]),
            "score_merged": merged["score"], "score_unmerged": unmerged["score"],
            "clean_stop_merged": merged["clean_stop_rate"], "clean_stop_unmerged": unmerged["clean_stop_rate"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from carexpert.config import Config
    from carexpert.dataset import build_builtin
    from carexpert.evaluation.data import eval_cases
    from carexpert.evaluation.generate import (
        build_prompts,
        generate_answers,
        length_order,
        padded_tokens,
        resolve_batch_size,
    )
    from carexpert.evaluation.runner import EvalData, evaluate_model
    from carexpert.evaluation.sides import SIDE_NAMES
    from carexpert.knowledge import load_knowledge

    config = Config()
    if args.max_new_tokens is not None:
        config.eval.max_new_tokens = args.max_new_tokens
    if args.batch_size is not None:
        config.eval.batch_size = args.batch_size
    knowledge = load_knowledge()
    built = build_builtin(config.data.num_examples, seed=config.train.seed)
    cases = eval_cases(built.splits["test"], knowledge=knowledge)
    if args.items:
        cases = cases[:args.items]
    with tempfile.TemporaryDirectory(prefix="eval-sides-") as tmp:
        started = time.perf_counter()
        model, tokenizer = load(args, config, Path(tmp))
        load_s = time.perf_counter() - started
        try:
            from carexpert.retrieval import open_retriever  # the knowledge store, where this carexpert has it

            retriever = open_retriever(config)  # the context budget counted as training counts it
            retriever_kind = "knowledge store"
        except ImportError:
            retriever, retriever_kind = stand_in_retriever(knowledge, config.retrieval.top_k), "stand-in"
        device = next(model.parameters()).device
        batch_size = resolve_batch_size(config.eval.batch_size, device)
        progress = {}

        def report(phase: str, done: int, total: int) -> None:
            progress[phase] = (done, total)

        summary, items = evaluate_model(model, tokenizer, EvalData(cases=cases), config, sides=SIDE_NAMES,
                                        retriever=retriever, progress=report)
        result = {"model": config.model.base_model if args.model != "tiny" else "tiny test model",
                  "quantization": config.model.quantization, "device": str(device), "items": len(cases),
                  "batch_size": batch_size, "max_new_tokens": config.eval.max_new_tokens,
                  "retriever": retriever_kind, "load_s": round(load_s, 2), "timings": summary["timings"],
                  "evaluate_s": round(time.perf_counter() - started - load_s, 2),
                  "tuned_weights": summary["tuned_weights"], "sides": {}}
        if device.type == "cuda":
            import torch

            result["gpu"] = torch.cuda.get_device_name(device)
            result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        for side in SIDE_NAMES:
            lengths = [item[side]["length_tokens"] for item in items if not item[side]["guard"]]
            seconds = summary["timings"][f"{side}_s"]
            result["sides"][side] = {"seconds": seconds, "answers": len(lengths), "new_tokens": sum(lengths),
                                     "tokens_per_s": round(sum(lengths) / seconds, 1) if seconds else None,
                                     "guard_answers": sum(1 for item in items if item[side]["guard"]),
                                     "clean_stop_rate": summary["overall"][side]["clean_stop_rate"],
                                     "score": summary["overall"][side]["score"]}
        rag_prompts = build_prompts([(c.question, c.input) for c in cases], config.chat.system_prompt,
                                    [[h["text"] for h in item["retrieved"]] for item in items])
        lengths = [len(ids) for ids in tokenizer(rag_prompts, add_special_tokens=True)["input_ids"]]
        order = length_order(tokenizer, rag_prompts)
        result["prompt_tokens"] = {"real": sum(lengths),
                                   "padded_sorted": padded_tokens(lengths, order, batch_size),
                                   "padded_unsorted": padded_tokens(lengths, list(range(len(lengths))), batch_size)}
        if not args.skip_unmerged:
            result["tuned_rag_unmerged"] = unmerged_pass(model, tokenizer, cases, config, retriever, summary, items)
        if not args.skip_unsorted:
            for sort in (False, True):
                started = time.perf_counter()
                generate_answers(model, tokenizer, rag_prompts, max_new_tokens=config.eval.max_new_tokens,
                                 batch_size=batch_size, sort_by_length=sort)
                result[f"tuned_rag_{'sorted' if sort else 'unsorted'}_s"] = round(time.perf_counter() - started, 2)
    for side, figures in result["sides"].items():
        print(f"{side:13s} {figures['seconds']:8.2f} s  {figures['answers']:4d} answers  "
              f"{figures['new_tokens']:6d} tokens  {figures['tokens_per_s']} tok/s  guard {figures['guard_answers']}"
              f"  clean stop {figures['clean_stop_rate']}")
    if "tuned_rag_unmerged" in result:
        u = result["tuned_rag_unmerged"]
        print(f"tuned_rag merged ({result['tuned_weights']}) vs unmerged: {u['seconds']} s unmerged, "
              f"{u['identical']}/{u['answers']} answers identical, score {u['score_merged']} merged vs "
              f"{u['score_unmerged']} unmerged")
    print(json.dumps({k: v for k, v in result.items() if k != "sides"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
