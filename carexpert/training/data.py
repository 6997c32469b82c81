"""The tokenized train and validation sets of a run, and the fingerprint of its data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.prompt import render_prompt


class TokenizedSet:
    """A list of tokenized examples the Trainer can sample from."""

    def __init__(self, examples: list[dict[str, list[int]]]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.examples[index]

    def longest(self) -> int:
        return max((len(e["input_ids"]) for e in self.examples), default=0)

    def label_share(self) -> float:
        """Share of tokens that carry a label (what selective logits computes)."""
        tokens = sum(len(e["input_ids"]) for e in self.examples)
        labelled = sum(sum(1 for t in e["labels"] if t != -100) for e in self.examples)
        return labelled / tokens if tokens else 0.0


@dataclass
class TrainingData:
    train: TokenizedSet
    validation: TokenizedSet
    fingerprint: str


def load_training_data(config: Any, tokenizer: Any) -> TrainingData:
    """Tokenize the configured dataset's train and validation splits."""
    train_records, validation_records = _splits(config)
    max_length = config.data.max_length
    train = TokenizedSet([_tokenize_example(tokenizer, r, max_length) for r in train_records])
    validation = TokenizedSet([_tokenize_example(tokenizer, r, max_length) for r in validation_records])
    train.examples = [e for e in train.examples if any(t != -100 for t in e["labels"])]
    if not train.examples:
        raise UserError("no training example has an answer left after truncation", where=config.data.dataset,
                        fix="raise data.max_length or shorten the prompts")
    return TrainingData(train, validation, _fingerprint(train_records, validation_records))


def data_fingerprint(config: Any) -> str:
    """The fingerprint of the configured data, without tokenizing it (for the resume guard)."""
    return _fingerprint(*_splits(config))


# --- adapters: to be replaced by carexpert.dataset ----------------------------------

def _splits(config: Any) -> tuple[list[dict], list[dict]]:
    path = Path(config.data.dataset).expanduser()
    if config.data.dataset == "builtin" or not path.is_file():
        raise UserError("dataset not found", where=f"data.dataset = {config.data.dataset!r}",
                        fix="point data.dataset at a JSONL file of instruction/input/output records")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"line {number} is not JSON ({exc.msg})", where=str(path)) from None
    cut = max(1, int(len(records) * config.data.validation_fraction)) if config.data.validation_fraction else 0
    return records[cut:], records[:cut]


def _tokenize_example(tokenizer: Any, record: dict, max_length: int) -> dict[str, list[int]]:
    prompt = tokenizer(render_prompt(record["instruction"], record.get("input", "")), add_special_tokens=True)
    answer = tokenizer(record["output"], add_special_tokens=False)
    ids = (prompt["input_ids"] + answer["input_ids"] + [tokenizer.eos_token_id])[:max_length]
    labels = ([-100] * len(prompt["input_ids"]) + answer["input_ids"] + [tokenizer.eos_token_id])[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _fingerprint(train: list[dict], validation: list[dict]) -> str:
    text = json.dumps([train, validation], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
