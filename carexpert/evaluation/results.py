"""Evaluation results on disk: ``runs/<id>/eval/<timestamp>/{summary.json,items.jsonl}``.

The schema (version 1) is a contract with the app and ``carexpert compare``; it may grow
keys but never lose or rename them:

summary.json = {"version", "run_id", "created", "model", "adapter", "config",
  "dataset_fingerprint", "n_items", "timings": {"load_s", "base_s", "tuned_s", "total_s"},
  "val_loss": {"base", "tuned"}, "perplexity": {"base", "tuned"},
  "categories": {cat: {"n", "base": {...}, "tuned": {...}}}, "overall": {"base": {...}, "tuned": {...}}}
where each side holds "score", "correct_rate", "numeric_accuracy", "concept_coverage",
"refusal_rate", "clean_stop_rate", "repetition_rate", "mean_length" (plus extra keys).

items.jsonl = one line per case: {"id", "category", "question", "reference", "expected",
  "base_answer", "tuned_answer", "base": {"verdict", "score", ...}, "tuned": {...}}.
Without a base comparison, every "base" entry is null.

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
from carexpert.runs.paths import RunPaths

SCHEMA_VERSION = 1
SUMMARY_FILE = "summary.json"
ITEMS_FILE = "items.jsonl"
SUMMARY_KEYS = ("version", "run_id", "created", "model", "adapter", "config", "dataset_fingerprint", "n_items",
                "timings", "val_loss", "perplexity", "categories", "overall")
SIDE_KEYS = ("score", "correct_rate", "numeric_accuracy", "concept_coverage", "refusal_rate",
             "clean_stop_rate", "repetition_rate", "mean_length")
ITEM_KEYS = ("id", "category", "question", "reference", "expected", "base_answer", "tuned_answer", "base", "tuned")


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
    if not isinstance(summary, dict) or summary.get("version") != SCHEMA_VERSION:
        raise UserError(f"unsupported results version {summary.get('version') if isinstance(summary, dict) else '?'}",
                        where=str(summary_path), fix=f"this carexpert reads version {SCHEMA_VERSION}")
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
    return EvalResults(folder, summary, items)


def list_results(run: RunPaths | str | Path) -> list[Path]:
    """A run's result folders (those with a summary.json), newest first."""
    eval_dir = run.eval if isinstance(run, RunPaths) else Path(run) / "eval"
    if not eval_dir.is_dir():
        return []
    found = [p for p in eval_dir.iterdir()
             if p.is_dir() and not p.name.startswith(".") and (p / SUMMARY_FILE).is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def find_result(run: RunPaths, name: str | None = None) -> Path:
    """The named result folder of a run, or its newest; a UserError when there is none."""
    results = list_results(run)
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
