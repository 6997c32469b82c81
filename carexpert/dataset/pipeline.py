"""From a dataset setting to splits, files and tokenized training data.

The setting is one of: ``"builtin"`` (the generated automotive set), a user file
(JSONL/JSON/CSV), or a folder written by ``carexpert data build`` (its manifest and three
JSONL files). The core functions take plain parameters; the ``*_from_config`` wrappers at
the end read them from a ``carexpert.config.Config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carexpert import __version__
from carexpert.config import Config
from carexpert.dataset.fingerprint import dataset_fingerprint
from carexpert.dataset.generator import DEFAULT_MIX, generate_examples
from carexpert.dataset.showcase import showcase_cases, showcase_fact_ids
from carexpert.dataset.splits import MANIFEST, build_splits, read_splits, unseen_test_facts, write_splits
from carexpert.dataset.tokenization import TokenizeReport, tokenize_records
from carexpert.dataset.user_load import LoadReport, load_user_records
from carexpert.errors import UserError
from carexpert.knowledge import load_knowledge

BUILTIN = "builtin"


@dataclass
class BuiltData:
    """Splits plus where they came from."""

    splits: dict[str, list[dict[str, Any]]]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    load_report: LoadReport | None = None

    def training_records(self) -> list[dict[str, Any]]:
        return self.splits["train"] + self.splits["validation"]


@dataclass
class PreparedData:
    """Tokenized training data and the facts a run records about it."""

    datasets: Any  # datasets.DatasetDict with "train" (and "validation" when there is any)
    fingerprint: str
    reports: dict[str, TokenizeReport]
    built: BuiltData


def build_builtin(num_examples: int = 1600, *, validation_fraction: float = 0.1, test_fraction: float = 0.1,
                  holdout_fact_fraction: float = 0.1, seed: int = 42) -> BuiltData:
    """Generate the automotive set and split it; the showcase questions join the test split."""
    knowledge = load_knowledge()
    records = generate_examples(num_examples, seed, knowledge=knowledge)
    splits = build_splits(records, validation_fraction=validation_fraction, test_fraction=test_fraction,
                          holdout_fact_fraction=holdout_fact_fraction, seed=seed,
                          protected_facts=showcase_fact_ids(knowledge), extra_test=showcase_cases(knowledge))
    meta = {"source": BUILTIN, "generator": f"carexpert {__version__}", "seed": seed,
            "num_examples_requested": num_examples, "num_examples_generated": len(records),
            "mix": DEFAULT_MIX, "validation_fraction": validation_fraction, "test_fraction": test_fraction,
            "holdout_fact_fraction": holdout_fact_fraction}
    return BuiltData(splits, BUILTIN, meta)


def build_from_file(path: str | Path, *, validation_fraction: float = 0.1, test_fraction: float = 0.1,
                    seed: int = 42, tokenizer: Any = None, max_length: int | None = None,
                    skip_bad_records: bool = False) -> BuiltData:
    """Validate a user file (UserError on bad records unless skipping) and split it by category."""
    records, report = load_user_records(path, tokenizer=tokenizer, max_length=max_length,
                                        skip_bad_records=skip_bad_records)
    splits = build_splits(records, validation_fraction=validation_fraction, test_fraction=test_fraction,
                          holdout_fact_fraction=0.0, seed=seed)
    meta = {"source": str(path), "seed": seed, "validation_fraction": validation_fraction,
            "test_fraction": test_fraction, "loaded": report.loaded, "skipped_bad_records": report.skipped,
            "duplicates_removed": report.duplicates}
    return BuiltData(splits, str(path), meta, report)


def build_data(dataset: str, *, num_examples: int = 1600, validation_fraction: float = 0.1,
               test_fraction: float = 0.1, holdout_fact_fraction: float = 0.1, seed: int = 42,
               tokenizer: Any = None, max_length: int | None = None, skip_bad_records: bool = False) -> BuiltData:
    """Splits for any dataset setting: builtin, a user file, or a built folder."""
    if dataset == BUILTIN:
        return build_builtin(num_examples, validation_fraction=validation_fraction, test_fraction=test_fraction,
                             holdout_fact_fraction=holdout_fact_fraction, seed=seed)
    path = Path(dataset).expanduser()
    if path.is_dir():
        if not (path / MANIFEST).exists():
            raise UserError("this folder has no manifest.json", where=str(path),
                            fix="point data.dataset at a dataset file, or at a folder made by 'carexpert data build'")
        return BuiltData(read_splits(path), str(path), {"source": str(path)})
    return build_from_file(path, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed,
                           tokenizer=tokenizer, max_length=max_length, skip_bad_records=skip_bad_records)


def write_data(built: BuiltData, directory: str | Path) -> dict[str, Any]:
    """Write the splits and manifest into ``directory``; returns the manifest."""
    return write_splits(built.splits, directory, meta=built.meta)


def prepare_training(built: BuiltData, tokenizer: Any, max_length: int) -> PreparedData:
    """Tokenize train and validation (answer-only labels); refuse when nothing is left to train on."""
    import datasets

    parts, reports = {}, {}
    for name in ("train", "validation"):
        rows, report = tokenize_records(tokenizer, built.splits[name], max_length)
        reports[name] = report
        if rows:
            parts[name] = datasets.Dataset.from_list(rows)
    if "train" not in parts:
        raise UserError("no training examples are left after tokenization", where=built.source,
                        details=[reports["train"].summary()],
                        fix="raise data.max_length or shorten the prompts")
    fingerprint = dataset_fingerprint(built.training_records(), max_length)
    return PreparedData(datasets.DatasetDict(parts), fingerprint, reports, built)


# -- thin wrappers over a carexpert.config.Config ---------------------------------------------------

def build_from_config(config: Config, tokenizer: Any = None) -> BuiltData:
    """The configured splits; with retrieval on, train and validation records carry their passages."""
    data = config.data
    built = build_data(data.dataset, num_examples=data.num_examples, validation_fraction=data.validation_fraction,
                       test_fraction=data.test_fraction, holdout_fact_fraction=data.holdout_fact_fraction,
                       seed=config.train.seed, tokenizer=tokenizer, max_length=data.max_length,
                       skip_bad_records=data.skip_bad_records)
    if config.retrieval.enabled:
        ground_built(built, config)
    return built


def ground_built(built: BuiltData, config: Config) -> None:
    """Give train and validation records retrieved context (``carexpert.dataset.grounding``), in place."""
    from carexpert.dataset.grounding import GroundingPlan, ground_records
    from carexpert.retrieval import open_retriever

    retriever = open_retriever(config)
    # Facts training never sees (not every fact of a held-out test record: a comparison held out for one
    # car's sake names a second car that training does see, whose passages and derived passages may appear).
    held_out = set(unseen_test_facts(built.splits))
    plan = GroundingPlan(top_k=config.retrieval.top_k, seed=config.train.seed)
    for name in ("train", "validation"):
        built.splits[name] = ground_records(built.splits[name], retriever, plan, held_out)
    built.meta["grounding"] = {"top_k": plan.top_k, "distractor_only_share": plan.distractor_only_share,
                               "held_out_passages": len(held_out)}


def write_from_config(config: Config, directory: str | Path | None = None) -> tuple[BuiltData, dict[str, Any]]:
    built = build_from_config(config)
    return built, write_data(built, directory or config.data.data_dir)


def training_data_from_config(config: Config, tokenizer: Any) -> PreparedData:
    return prepare_training(build_from_config(config, tokenizer), tokenizer, config.data.max_length)


def fingerprint_from_config(config: Config, tokenizer: Any = None) -> str:
    """The data fingerprint of the configured train + validation splits, without tokenizing (resume guard).

    Pass the tokenizer where training has one and ``data.skip_bad_records`` is on: only then are
    over-long user records dropped, which changes the fingerprint.
    """
    return dataset_fingerprint(build_from_config(config, tokenizer).training_records(), config.data.max_length)


def evaluation_records_from_config(config: Config) -> list[dict[str, Any]]:
    """The test split (showcase questions included when eval.include_showcase is on)."""
    test = build_from_config(config).splits["test"]
    include_showcase = getattr(getattr(config, "eval", None), "include_showcase", True)
    if config.data.dataset != BUILTIN and include_showcase:
        test = test + showcase_cases()
    return [r for r in test if include_showcase or r.get("holdout") != "showcase"]
