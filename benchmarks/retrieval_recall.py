"""Retrieval recall over the built dataset: ``python benchmarks/retrieval_recall.py [--data DIR]``.

Reads every record of DIR/train.jsonl, validation.jsonl and test.jsonl (``carexpert data build``
writes them; default: data.data_dir of the default config) and reports, with
``carexpert.knowledge.recall.measure``: the share of records whose answering passages are all in
the top k (k = retrieval.top_k, one more for two-vehicle records), the same for vehicle questions,
the share of made-up-model records flagged unknown and the share of other records flagged
wrongly, plus misses by question kind and examples of each failure.

--max-context-tokens N applies the prompt's token budget too (default: none, pure ranking);
--tokenizer DIR counts those tokens with a real tokenizer (default: 4 characters per token).
The store is built in a temporary folder from the builtin tables, so nothing of yours is touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carexpert.config import load_or_default
from carexpert.knowledge.recall import measure
from carexpert.knowledge.store import KnowledgeStore, build_store
from carexpert.retrieval import Retriever


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder with train/validation/test.jsonl")
    parser.add_argument("--config", help="config file (default: ./carexpert.toml or the defaults)")
    parser.add_argument("--max-context-tokens", type=int, default=10**9)
    parser.add_argument("--tokenizer", help="tokenizer folder for exact token counts")
    parser.add_argument("--show", type=int, default=10, help="examples of each failure to print")
    args = parser.parse_args()
    config = load_or_default(args.config)
    folder = args.data or Path(config.data.data_dir)
    records = []
    for split in ("train", "validation", "test"):
        path = folder / f"{split}.jsonl"
        if not path.exists():
            print(f"{path} is missing: run 'carexpert data build' first", file=sys.stderr)
            return 2
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    count_tokens = None
    if args.tokenizer:
        from transformers import AutoTokenizer  # only when asked: exact counts for the budget

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        count_tokens = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    with tempfile.TemporaryDirectory() as temp:
        store = Path(temp) / "knowledge.sqlite"
        build_store(store)
        retriever = Retriever(KnowledgeStore(store), top_k=config.retrieval.top_k,
                              max_context_tokens=args.max_context_tokens, min_score=config.retrieval.min_score,
                              count_tokens=count_tokens)
        report = measure(retriever, records, keep=args.show)
    print(report.summary())
    print(json.dumps({"shares": report.shares(), "records": report.total,
                      "misses_by_kind": dict(report.misses_by_kind.most_common()),
                      "misses": report.misses, "false_flags": report.false_flags,
                      "missed_refusals": report.missed_refusals}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
