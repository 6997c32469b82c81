"""``carexpert compare RUN RUN [...]``: loss, config differences and eval side by side."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from carexpert.cli.main import add_config_option
from carexpert.config import load_or_default
from carexpert.errors import UserError
from carexpert.textsafe import safe_markup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="compare two or more runs: loss, config diff, eval")
    add_config_option(parser)
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.set_defaults(func=run_compare)


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else safe_markup(value)


def run_compare(args: argparse.Namespace) -> int:
    from carexpert.runs.compare import compare_runs
    from carexpert.runs.control import find_run

    if len(args.runs) < 2:
        raise UserError("compare needs at least two runs", fix="carexpert compare RUN_A RUN_B")
    config = load_or_default(args.config)
    for run_id in args.runs:
        find_run(config.train.runs_dir, run_id, marked=False)  # each a real folder inside runs_dir (only read)
    result = compare_runs(config.train.runs_dir, args.runs)
    console = Console()
    losses = Table(title="loss")
    losses.add_column("")
    for run_id in args.runs:
        losses.add_column(run_id)
    for key in ("steps", "last_train_loss", "best_val_loss"):
        losses.add_row(key, *(_fmt(final[key]) for final in result["finals"]))
    console.print(losses)
    diff = Table(title="config differences")
    diff.add_column("key")
    for run_id in args.runs:
        diff.add_column(run_id)
    for key, values in result["config_diff"].items():
        diff.add_row(safe_markup(key, 80), *(_fmt(v) for v in values))
    console.print(diff if result["config_diff"] else "[dim]same configuration[/dim]")
    summaries = result["eval"]
    categories = sorted({c for s in summaries if s for c in s.get("categories", {})})
    if categories:
        from carexpert.evaluation.sides import headline_side

        scores = Table(title="eval score (tuned, with retrieval when evaluated) by category")
        scores.add_column("category")
        for run_id in args.runs:
            scores.add_column(run_id)
        for category in [*categories, "overall"]:
            row = []
            for summary in summaries:
                side = headline_side((summary or {}).get("sides") or [])
                block = (summary or {}).get("overall" if category == "overall" else "categories", {})
                block = block if category == "overall" else block.get(category, {})
                row.append(_fmt(((block or {}).get(side) or {}).get("score") if side else None))
            scores.add_row(safe_markup(category, 60), *row)
        console.print(scores)
    return 0
