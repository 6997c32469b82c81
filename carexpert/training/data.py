"""The tokenized train and validation sets of a run (built by ``carexpert.dataset``).

This module only adapts the dataset package's output to what the planner and the
Trainer need: the split sizes, the longest example and the share of labelled tokens
(both feed the memory estimate), and the fingerprint the resume guard compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carexpert.config import Config


@dataclass
class TrainingData:
    train: Any  # datasets.Dataset of input_ids / attention_mask / labels
    validation: Any  # the same, possibly empty (a list)
    fingerprint: str
    notes: list[str]

    def longest(self) -> int:
        return max((len(ids) for ids in self.train["input_ids"]), default=0)

    def label_share(self) -> float:
        """Share of training tokens that carry a label (the ones selective logits computes)."""
        tokens = labelled = 0
        for labels in self.train["labels"]:
            tokens += len(labels)
            labelled += sum(1 for token in labels if token != -100)
        return labelled / tokens if tokens else 0.0


def load_training_data(config: Config, tokenizer: Any) -> TrainingData:
    """Build the configured dataset's splits and tokenize train and validation."""
    from carexpert.dataset import training_data_from_config

    prepared = training_data_from_config(config, tokenizer)
    notes = [f"{name}: {report.summary()}" for name, report in prepared.reports.items()
             if report.truncated or report.dropped]
    validation = prepared.datasets.get("validation", [])
    return TrainingData(prepared.datasets["train"], validation, prepared.fingerprint, notes)


def data_fingerprint(config: Config) -> str:
    """The fingerprint training will record for the configured data, computed without training.

    A user file with ``data.skip_bad_records`` loses its over-long records only when a
    tokenizer measures them, so the tokenizer is loaded for that case alone.
    """
    from carexpert.dataset import BUILTIN, fingerprint_from_config

    tokenizer = None
    if config.data.skip_bad_records and config.data.dataset != BUILTIN:
        from carexpert.training.model_setup import load_tokenizer_for_training

        tokenizer = load_tokenizer_for_training(config)
    return fingerprint_from_config(config, tokenizer)
