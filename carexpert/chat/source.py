"""Which model a chat, the server or an export uses: a run's adapter, with the settings it trained with.

A run folder keeps the config it started with; what the adapter belongs to (base model,
quantization, LoRA shape, data) wins over the user's current config, and everything else
(chat sampling, paths) comes from the user's config: the one rule of
``carexpert.runs.artifacts.config_for_adapter``, which evaluation follows too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.runs import RunPaths, control, list_run_paths
from carexpert.runs.artifacts import config_for_adapter, has_adapter


@dataclass(frozen=True)
class RunAdapter:
    """A run's adapter folder and the config to load it with."""

    run: RunPaths
    config: Config

    @property
    def adapter_dir(self) -> Path:
        return self.run.adapter


def adapter_runs(config: Config) -> list[RunPaths]:
    """Every run under ``train.runs_dir`` that has an adapter (a finished run), newest first."""
    return [run for run in list_run_paths(Path(config.train.runs_dir)) if has_adapter(run)]


def find_adapter_run(config: Config, run: str | None) -> RunPaths:
    """A run named by id (under ``train.runs_dir``) or by folder path; None means the newest run with an adapter."""
    runs_dir = Path(config.train.runs_dir)
    if run is None:
        for candidate in list_run_paths(runs_dir):
            if has_adapter(candidate):
                return candidate
        raise UserError(f"no finished run with an adapter in {runs_dir}",
                        fix="train one with 'carexpert train', name a run, or chat with the base model: --base")
    paths = control.find_run(runs_dir, run).paths
    if not has_adapter(paths):
        raise UserError("this run has no adapter yet (adapter/adapter_config.json missing)", where=str(paths.root),
                        fix="wait for the run to finish, or resume it with 'carexpert train --resume'")
    return paths


def run_adapter(config: Config, run: str | None) -> RunAdapter:
    """The run's adapter and ``config`` with the run's own model, LoRA and data sections."""
    paths = find_adapter_run(config, run)
    return RunAdapter(paths, config_for_adapter(paths, config))
