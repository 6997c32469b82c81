"""What an evaluation asks: a run's held-out split, the showcase questions and the user's cases.

The splits are rebuilt from the run's frozen data settings (the generator and the split are
seeded, so this is the very test set the run never trained on), and the fingerprint of its
train + validation records is recorded so a result can be matched to the data it was trained on.

Each case carries what the knowledge store says about the vehicles its question names
(``store`` in its expectations: their figures, the figures the store leaves blank, whether the
model is made up), read from the record's ``fact_ids`` and the vehicle table, for the
hallucinated-figure check (``carexpert.evaluation.figures``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carexpert.config import Config
from carexpert.evaluation.cases import EvalCase, case_from_record, cases_file, dedupe, load_user_cases
from carexpert.evaluation.figures import store_expectations
from carexpert.evaluation.loss import TokenizeFn

SHOWCASE = "showcase"


@dataclass
class EvalData:
    """What to evaluate: the cases, the validation records for loss, and where they came from."""

    cases: list[EvalCase]
    validation: list[dict[str, Any]] = field(default_factory=list)
    tokenize: TokenizeFn | None = None
    fingerprint: str | None = None


def spread_limit(records: Sequence[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """The first ``limit`` records taken round-robin over categories (all when limit is 0),
    so a short evaluation still covers every category; order within a category is kept."""
    if not limit or limit >= len(records):
        return list(records)
    by_category: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_category.setdefault(str(record.get("category", "")), []).append(record)
    queues = list(by_category.values())
    chosen: list[Mapping[str, Any]] = []
    depth = 0
    while len(chosen) < limit:
        for queue in queues:
            if depth < len(queue) and len(chosen) < limit:
                chosen.append(queue[depth])
        depth += 1
    return chosen


def eval_cases(test_records: Sequence[Mapping[str, Any]], *, limit: int = 0, include_showcase: bool = True,
               extra_showcase: Sequence[Mapping[str, Any]] = (), user_cases: Sequence[EvalCase] = (),
               knowledge: Any = None) -> list[EvalCase]:
    """Held-out cases (limited), then showcase cases, then user cases; repeated questions asked once.
    With ``knowledge``, each case from a record gets its store expectations."""
    held = [r for r in test_records if r.get("holdout") != SHOWCASE]
    showcase = [r for r in test_records if r.get("holdout") == SHOWCASE] or list(extra_showcase)

    def case(record: Mapping[str, Any], source: str) -> EvalCase:
        made = case_from_record(record, source=source)
        if knowledge is not None:
            made.store = store_expectations(record, knowledge)
        return made

    cases = [case(r, "test") for r in spread_limit(held, limit)]
    if include_showcase:
        cases += [case(r, SHOWCASE) for r in showcase]
    return dedupe([*cases, *user_cases])


def load_eval_data(config: Config, *, limit: int = 0) -> EvalData:
    """The cases, validation records, tokenizer function and data fingerprint for ``config``."""
    from carexpert.dataset import build_from_config, dataset_fingerprint, showcase_cases, tokenize_example
    from carexpert.knowledge import load_knowledge

    built = build_from_config(config)
    include_showcase = config.eval.include_showcase
    has_showcase = any(r.get("holdout") == SHOWCASE for r in built.splits["test"])
    cases = eval_cases(built.splits["test"], limit=limit, include_showcase=include_showcase,
                       extra_showcase=showcase_cases() if include_showcase and not has_showcase else (),
                       user_cases=load_user_cases(cases_file(config.data.data_dir)), knowledge=load_knowledge())
    validation = list(built.splits["validation"])
    if limit:
        validation = validation[:limit]
    return EvalData(cases=cases, validation=validation, tokenize=tokenize_example,
                    fingerprint=dataset_fingerprint(built.training_records(), config.data.max_length))
