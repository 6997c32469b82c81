"""Evaluation results on disk: ``runs/<id>/eval/<timestamp>/{summary.json,items.jsonl}``.

The schema is a contract with the app and ``carexpert compare``. Version 2 names each
evaluated *side* (``carexpert.evaluation.sides``: ``base_closed``, ``base_rag``,
``tuned_closed``, ``tuned_rag``):

summary.json = {"version": 2, "run_id", "created", "model", "adapter", "config",
  "dataset_fingerprint", "n_items", "sides": [side, ...],
  "timings": {"load_s", "retrieval_s", "<side>_s", ..., "total_s"},
  "val_loss": {"base", "tuned"}, "perplexity": {"base", "tuned"},
  "categories": {cat: {"n", side: {...}, ...}}, "overall": {side: {...}}, "holdouts": {...}}
where each side holds "score", "correct_rate", "numeric_accuracy", "concept_coverage",
"refusal_rate", "false_refusal_rate", "guard_refusal_rate", "correct_refusal_rate",
"model_correct_refusal_rate", "hallucination_rate", "clean_stop_rate", "repetition_rate",
"mean_length" (plus extra keys); a side that was not evaluated is null.

items.jsonl = one line per case: {"id", "category", "question", "reference", "expected",
  "retrieved", "unknown", "<side>_answer", ..., side: {"verdict", "score", "guard", "used",
  "hallucinated", ...}, ...}.

Version 1 files (before retrieval: "base" and "tuned", both closed-book) are read as
version 2 (``upgrade``): "base" becomes "base_closed", "tuned" "tuned_closed".

A result folder is built under a hidden temporary name and renamed into place whole,
so a reader never sees half a result.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.fsutil import atomic_write_json, atomic_write_text
from carexpert.runs.artifacts import EVAL_ITEMS, EVAL_SUMMARY, eval_results
from carexpert.runs.paths import RunPaths

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
SUMMARY_FILE = EVAL_SUMMARY  # the run folder's layout (file names, listing) belongs to carexpert.runs
ITEMS_FILE = EVAL_ITEMS
SUMMARY_KEYS = ("version", "run_id", "created", "model", "adapter", "config", "dataset_fingerprint", "n_items",
                "sides", "timings", "val_loss", "perplexity", "categories", "overall")
SIDE_KEYS = ("score", "correct_rate", "numeric_accuracy", "concept_coverage", "refusal_rate", "false_refusal_rate",
             "guard_refusal_rate", "correct_refusal_rate", "model_correct_refusal_rate", "hallucination_rate",
             "clean_stop_rate", "repetition_rate", "mean_length")
ITEM_KEYS = ("id", "category", "question", "reference", "expected", "retrieved")
V1_SIDES = {"base": "base_closed", "tuned": "tuned_closed"}


@dataclass
class EvalResults:
    """One saved evaluation: its folder, summary and per-item lines."""

    path: Path
    summary: dict[str, Any]
    items: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.path.name


def result_folder_name() -> str:
    """A timestamp that sorts in time order: ``20261125-094500``."""
    return time.strftime("%Y%m%d-%H%M%S")


def write_results(eval_dir: str | Path, summary: Mapping[str, Any], items: Iterable[Mapping[str, Any]],
                  name: str | None = None) -> Path:
    """Write one result folder atomically under ``eval_dir``; returns its path."""
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    if missing:
        raise ValueError(f"summary lacks keys {missing}")
    base = Path(eval_dir)
    base.mkdir(parents=True, exist_ok=True)
    name = name or result_folder_name()
    final = base / name
    suffix = 1
    while final.exists():  # two evaluations in one second
        suffix += 1
        final = base / f"{name}-{suffix}"
    staging = base / f".{final.name}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        lines = "".join(json.dumps(dict(item), ensure_ascii=False, allow_nan=False) + "\n" for item in items)
        atomic_write_text(staging / ITEMS_FILE, lines)
        atomic_write_json(staging / SUMMARY_FILE, dict(summary))
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def load_results(path: str | Path) -> EvalResults:
    """Read a result folder; a UserError names what is missing or broken."""
    folder = Path(path)
    summary_path = folder / SUMMARY_FILE
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("not an evaluation result (no summary.json)", where=str(folder),
                        fix="pick a folder listed by 'carexpert eval show RUN'") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"summary.json cannot be read ({exc})", where=str(summary_path)) from None
    if not isinstance(summary, dict) or summary.get("version") not in READABLE_VERSIONS:
        raise UserError(f"unsupported results version {summary.get('version') if isinstance(summary, dict) else '?'}",
                        where=str(summary_path),
                        fix=f"this carexpert reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    items = []
    items_path = folder / ITEMS_FILE
    if items_path.exists():
        for number, line in enumerate(items_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"broken line ({exc.msg})", where=f"{items_path}:{number}") from None
    return EvalResults(folder, *upgrade(summary, items))


def upgrade(summary: dict[str, Any], items: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A version 1 result in the version 2 shape (in memory; the files stay as they are).

    Version 1 had two closed-book sides, "base" and "tuned": they become "base_closed" and
    "tuned_closed", their answers "<side>_answer"; "sides" lists those that were evaluated.
    ``upgraded_from`` records the version read. A version 2 result is returned unchanged.
    """
    if summary.get("version") != 1:
        return summary, items

    def rename(block: Any) -> Any:
        if not isinstance(block, dict):
            return block
        return {V1_SIDES.get(key, key): value for key, value in block.items()}

    overall = summary.get("overall") or {}
    sides = [V1_SIDES[old] for old in ("base", "tuned") if overall.get(old) is not None]
    timings = {(f"{V1_SIDES[k[:-2]]}_s" if k[:-2] in V1_SIDES else k): v
               for k, v in (summary.get("timings") or {}).items()}
    new = {**summary, "version": SCHEMA_VERSION, "upgraded_from": 1, "sides": sides, "timings": timings,
           "overall": rename(overall),
           "categories": {cat: rename(block) for cat, block in (summary.get("categories") or {}).items()},
           "holdouts": {kind: rename(block) for kind, block in (summary.get("holdouts") or {}).items()}}
    new_items = []
    for item in items:
        moved = {k: v for k, v in item.items() if k not in ("base", "tuned", "base_answer", "tuned_answer")}
        for old, side in V1_SIDES.items():
            moved[side] = item.get(old)
            moved[f"{side}_answer"] = item.get(f"{old}_answer")
        moved.setdefault("retrieved", None)
        new_items.append(moved)
    return new, new_items


def find_result(run: RunPaths, name: str | None = None) -> Path:
    """The named result folder of a run, or its newest; a UserError when there is none."""
    results = eval_results(run)
    if not results:
        raise UserError(f"run {run.run_id!r} has no evaluation results", where=str(run.eval),
                        fix=f"run 'carexpert eval {run.run_id}' first")
    if name is None:
        return results[0]
    for folder in results:
        if folder.name == name:
            return folder
    raise UserError(f"no result {name!r} in run {run.run_id!r}", where=str(run.eval),
                    details=[f"available: {', '.join(p.name for p in results[:10])}"])
