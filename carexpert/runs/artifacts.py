"""What a run produced: its adapter, its evaluation results, and the config that goes with them.

The trainer writes ``adapter/`` last (a LoRA adapter is there once ``adapter_config.json`` is);
evaluations write ``eval/<timestamp>/`` with a ``summary.json`` that marks a complete result.
Chat, evaluation, export, serving, the CLI and the app ask these functions instead of
looking for the files themselves.

The config for a run's adapter follows one rule everywhere (``config_for_adapter``): what
the adapter *is* comes from the run's frozen ``config.toml`` (the sections in
``TRAINED_WITH``: the base model and quantization, the LoRA shape, the data it learned from
and its held-out split, and the shape of the retrieved context it learned to read,
``TRAINED_RETRIEVAL``: how many passages and how many tokens of them), and how it is *used* now
comes from the caller's current config (chat sampling and system prompt, evaluation settings,
whether retrieval is on, which store and the guard, paths, the app). A quick-profile run trained
on one passage a prompt is asked with one passage, and its data fingerprint matches.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from carexpert.config import Config, load_config
from carexpert.errors import UserError
from carexpert.runs.paths import RunPaths

ADAPTER_CONFIG = "adapter_config.json"
EVAL_SUMMARY = "summary.json"
EVAL_ITEMS = "items.jsonl"
TRAINED_WITH = ("model", "lora", "data")
TRAINED_RETRIEVAL = ("top_k", "max_context_tokens", "min_score")


def is_adapter_dir(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a saved LoRA adapter (a run's ``adapter/`` or any PEFT adapter folder)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def has_adapter(run: RunPaths) -> bool:
    """Whether the run has finished writing its adapter."""
    return is_adapter_dir(run.adapter)


def require_adapter(run: RunPaths) -> Path:
    """The run's adapter folder; a UserError when the run or its adapter is missing."""
    if not run.exists():
        raise UserError(f"no run {run.run_id!r}", where=str(run.root),
                        fix="list runs with 'carexpert runs list' or check train.runs_dir")
    if not has_adapter(run):
        raise UserError(f"run {run.run_id!r} has no trained adapter yet ({ADAPTER_CONFIG} missing)",
                        where=str(run.adapter),
                        fix="wait for training to finish (or resume it with 'carexpert runs resume'); "
                            "the adapter is written at the end")
    return run.adapter


def frozen_config(run: RunPaths) -> Config | None:
    """The config the run started with (its ``config.toml``), or None for a run folder without one."""
    return load_config(run.config) if run.config.is_file() else None


def config_for_adapter(run: RunPaths, current: Config) -> Config:
    """``current`` with the run's own ``TRAINED_WITH`` sections: a new Config, ``current`` is not changed."""
    frozen = frozen_config(run)
    if frozen is None:
        return current
    retrieval = dataclasses.replace(current.retrieval, **{key: getattr(frozen.retrieval, key) for key in TRAINED_RETRIEVAL})
    return dataclasses.replace(current, retrieval=retrieval,
                               **{section: getattr(frozen, section) for section in TRAINED_WITH})


def eval_results(run: RunPaths | str | os.PathLike) -> list[Path]:
    """A run's complete evaluation result folders (those with a ``summary.json``), newest first."""
    eval_dir = run.eval if isinstance(run, RunPaths) else Path(run) / "eval"
    if not eval_dir.is_dir():
        return []
    found = [p for p in eval_dir.iterdir()
             if p.is_dir() and not p.name.startswith(".") and (p / EVAL_SUMMARY).is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)
