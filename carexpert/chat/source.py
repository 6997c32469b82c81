"""Which model a chat or an export uses: a run's adapter, with the model settings it trained with.

A run folder keeps the config it started with; its ``[model]`` section (base model,
quantization) is what the adapter belongs to, so it wins over the user's current
config. Everything else (chat sampling, paths) comes from the user's config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.runs import RunPaths, control, list_run_paths


@dataclass(frozen=True)
class RunAdapter:
    """A run's adapter folder and the config to load it with."""

    run: RunPaths
    config: Any

    @property
    def adapter_dir(self) -> Path:
        return self.run.adapter


def _has_adapter(run: RunPaths) -> bool:
    return (run.adapter / "adapter_config.json").is_file()


def adapter_runs(config: Any) -> list[RunPaths]:
    """Every run under ``train.runs_dir`` that has an adapter (a finished run), newest first."""
    return [run for run in list_run_paths(Path(config.train.runs_dir)) if _has_adapter(run)]


def find_run(config: Any, run: str | None) -> RunPaths:
    """A run named by id (under ``train.runs_dir``) or by folder path; None means the newest run with an adapter."""
    runs_dir = Path(config.train.runs_dir)
    if run is None:
        for candidate in list_run_paths(runs_dir):
            if _has_adapter(candidate):
                return candidate
        raise UserError(f"no finished run with an adapter in {runs_dir}",
                        fix="train one with 'carexpert train', name a run, or chat with the base model: --base")
    paths = control.find_run(runs_dir, run).paths
    if not _has_adapter(paths):
        raise UserError("this run has no adapter yet (adapter/adapter_config.json missing)", where=str(paths.root),
                        fix="wait for the run to finish, or resume it with 'carexpert train --resume'")
    return paths


def run_adapter(config: Any, run: str | None) -> RunAdapter:
    """The run's adapter and ``config`` with the run's own ``[model]`` section."""
    from carexpert.config import load_config

    paths = find_run(config, run)
    if paths.config.is_file():
        frozen = load_config(paths.config)
        config = dataclasses.replace(config, model=frozen.model, lora=frozen.lora)
    return RunAdapter(paths, config)
