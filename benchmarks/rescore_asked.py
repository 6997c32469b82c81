"""Specs numeric accuracy of saved answers under the old and the asked-figures reference rule.

Until the asked-figures rule, a spec question's reference held every figure its reference answer
happened to state ("What is the base MSRP of the 2020 Subaru Legacy?" -> price *and* the "182 hp"
the template adds), so an answer giving just the right price scored 0.5. Now the reference holds the
figures the question asks for (``carexpert.dataset.gen_specs.ASKED_FIGURES``). This script scores
an evaluation's saved answers both ways, with the evaluation's own scoring
(``carexpert.evaluation.metrics.score_answer`` -> ``numeric_accuracy``), so a results table can say
what the rule change alone moves. No model is loaded.

The new references come from the builtin test split rebuilt with the result's data settings (the
generator is seeded: the same questions, same ids); an item is re-referenced only when its rebuilt
record has the same id and the same reference answer, and the count of those that do not is printed.

    python benchmarks/rescore_asked.py benchmarks/results/h200-1-rag/lr1e3_tuned_rag_items.jsonl
    python benchmarks/rescore_asked.py ITEMS.jsonl[.gz] --summary SUMMARY.json --changed

Prints, per side with answers: the specs category's numeric accuracy as saved, rescored with the
saved references (old rule) and with the asked-figures references (new rule), and how many items
the rule changes (``--changed`` lists them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CATEGORY = "specs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("items", type=Path, help="an evaluation's items file (.jsonl or .jsonl.gz)")
    parser.add_argument("--summary", type=Path, default=None,
                        help="its summary JSON (default: the file beside it named *_summary.json or summary.json)")
    parser.add_argument("--changed", action="store_true", help="list the items whose score the rule changes")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args(argv)


def read_items(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def find_summary(items_path: Path) -> Path | None:
    name = items_path.name.removesuffix(".gz").removesuffix(".jsonl")
    for candidate in (items_path.with_name(name.removesuffix("items") + "summary.json"),
                      items_path.with_name("summary.json")):
        if candidate.is_file():
            return candidate
    return None


def rebuilt_test_records(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The builtin test split (and showcase) for the result's data settings, by record id."""
    from carexpert.config import Config
    from carexpert.dataset import build_data

    defaults = Config()
    data = {**defaults.to_dict()["data"], **(config.get("data") or {})}
    seed = (config.get("train") or {}).get("seed", defaults.train.seed)
    if data["dataset"] != "builtin":
        raise SystemExit(f"rescore_asked: the result was made on dataset {data['dataset']!r}; "
                         "only the builtin data has spec kinds to re-reference")
    built = build_data("builtin", num_examples=data["num_examples"], validation_fraction=data["validation_fraction"],
                       test_fraction=data["test_fraction"], holdout_fact_fraction=data["holdout_fact_fraction"],
                       seed=seed)
    return {record["id"]: record for record in built.splits["test"]}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def rescore(items: list[dict[str, Any]], records: dict[str, dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Per side: specs numeric accuracy saved / old rule / asked rule, and the items the rule changes."""
    from carexpert.evaluation.cases import numeric_reference
    from carexpert.evaluation.metrics import score_answer
    from carexpert.evaluation.rescore import _generation, case_from_item
    from carexpert.evaluation.sides import SIDE_NAMES

    specs = [item for item in items if item.get("category") == CATEGORY]
    new_cases, unmatched, re_referenced = [], 0, 0
    for item in specs:
        case = case_from_item(item)
        record = records.get(case.id)
        if record is None or record.get("output") != case.reference_text:
            unmatched += 1
        else:
            asked = numeric_reference(record.get("reference"))
            re_referenced += asked != case.reference
            case.reference = asked
        new_cases.append(case)
    result: dict[str, Any] = {"items": len(specs), "re_referenced": re_referenced, "unmatched": unmatched,
                              "sides": {}}
    for side in SIDE_NAMES:
        generations = [_generation(item, side) for item in specs]
        if any(g is None for g in generations):
            continue
        saved, old, new, changed = [], [], [], []
        for item, case, generation in zip(specs, new_cases, generations):
            assert generation is not None
            before = score_answer(case_from_item(item), generation.text, tolerance=tolerance,
                                  stop_reason=generation.stop_reason, n_tokens=generation.n_tokens)
            after = score_answer(case, generation.text, tolerance=tolerance,
                                 stop_reason=generation.stop_reason, n_tokens=generation.n_tokens)
            saved.append((item.get(side) or {}).get("numeric_accuracy"))
            old.append(before["numeric_accuracy"])
            new.append(after["numeric_accuracy"])
            if before["numeric_accuracy"] != after["numeric_accuracy"]:
                changed.append({"id": case.id, "question": case.question, "old": before["numeric_accuracy"],
                                "new": after["numeric_accuracy"], "reference_old": item["expected"]["reference"],
                                "reference_new": case.reference, "answer": generation.text})
        result["sides"][side] = {"saved": _mean(saved), "old_rule": _mean(old), "asked_rule": _mean(new),
                                 "scored": sum(1 for v in new if v is not None), "changed": changed}
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    items = read_items(args.items)
    summary_path = args.summary or find_summary(args.items)
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path else {}
    config = summary.get("config") or {}
    tolerance = float((config.get("eval") or {}).get("numeric_tolerance", 0.03))
    result = rescore(items, rebuilt_test_records(config), tolerance)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{args.items}: {result['items']} {CATEGORY} items, {result['re_referenced']} with fewer reference "
          f"figures under the asked rule, {result['unmatched']} not found in the rebuilt test split (kept as saved)"
          + ("" if summary_path else "; no summary found, default data settings used"))
    for side, figures in result["sides"].items():
        print(f"{side:13s} specs numeric accuracy: saved {figures['saved']}  old rule {figures['old_rule']}  "
              f"asked rule {figures['asked_rule']}  ({figures['scored']} scored, {len(figures['changed'])} changed)")
        if args.changed:
            for change in figures["changed"]:
                print(f"  {change['old']} -> {change['new']}  {change['question']}\n"
                      f"    reference {change['reference_old']} -> {change['reference_new']}\n"
                      f"    answer: {change['answer'][:200]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
