"""``carexpert data build|preview|stats|validate PATH``: build, look at and check training data."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from carexpert.cli.main import add_config_option
from carexpert.config import Config
from carexpert.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build, preview, measure or validate training data")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="generate (or split a user file) and write train/validation/test")
    add_config_option(build)
    build.add_argument("--out", metavar="DIR", help="output folder (default: data.data_dir)")
    build.add_argument("--num-examples", type=int, metavar="N", help="override data.num_examples")
    build.add_argument("--seed", type=int, metavar="N", help="override train.seed")
    build.set_defaults(func=run_build)

    preview = actions.add_parser("preview", help="print sample questions and answers per category")
    add_config_option(preview)
    preview.add_argument("-n", "--per-category", type=int, default=2, metavar="N", help="samples per category")
    preview.add_argument("--category", action="append", metavar="NAME", help="only this category (repeatable)")
    preview.add_argument("--split", choices=("train", "validation", "test"), default="train")
    preview.set_defaults(func=run_preview)

    stats = actions.add_parser("stats", help="category mix and token lengths (p50/p95/max)")
    add_config_option(stats)
    stats.add_argument("--tokenizer", metavar="PATH",
                       help="tokenizer folder or hub id for exact token counts (default: model.base_model when it "
                            "is a local folder with tokenizer files; otherwise an estimate)")
    stats.set_defaults(func=run_stats)

    validate = actions.add_parser("validate", help="check a JSONL/JSON/CSV dataset file; exit 2 on bad records")
    add_config_option(validate)
    validate.add_argument("path", metavar="PATH")
    validate.add_argument("--tokenizer", metavar="PATH", help="also check lengths against max_length in tokens")
    validate.add_argument("--max-length", type=int, metavar="N", help="override data.max_length")
    validate.set_defaults(func=run_validate)


def run_build(args: argparse.Namespace) -> int:
    from carexpert.dataset import build_from_config, write_data

    config = _config(args)
    if args.num_examples is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, num_examples=args.num_examples))
    if args.seed is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=args.seed))
    built = build_from_config(config)
    out = Path(args.out or config.data.data_dir)
    manifest = write_data(built, out)
    console = Console()
    if built.load_report is not None:
        console.print(built.load_report.summary())
    requested, generated = built.meta.get("num_examples_requested"), built.meta.get("num_examples_generated")
    if requested and generated is not None and generated < requested:
        console.print(f"[yellow]note:[/yellow] the knowledge tables support {generated} unique questions in this "
                      f"category mix, fewer than the {requested} requested")
    console.print(_mix_table(manifest["category_mix"], manifest["counts"]))
    holdout = ", ".join(f"{n} {kind}" for kind, n in manifest.get("test_holdout", {}).items())
    console.print(f"test holdout: {holdout}; {len(manifest['held_out_facts'])} facts never seen in training")
    console.print(f"[green]wrote[/green] {out}/train.jsonl, validation.jsonl, test.jsonl, manifest.json")
    console.print(f"fingerprint {manifest['fingerprint']}")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    rows, source = _split_rows(_config(args), args.split)
    console = Console()
    console.print(f"[bold]{args.split}[/bold] split from {source}")
    categories = args.category or sorted({r.get("category", "user") for r in rows})
    for category in categories:
        picked = [r for r in rows if r.get("category", "user") == category][: max(0, args.per_category)]
        if not picked:
            console.print(f"[yellow]no {category} records in this split[/yellow]")
        for record in picked:
            console.print(_record_panel(record))
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from carexpert.dataset import build_from_config, split_summary, token_length_stats
    from carexpert.dataset.generator import DEFAULT_MIX

    config = _config(args)
    tokenizer_path = args.tokenizer or local_model_tokenizer(config)
    tokenizer = load_tokenizer(tokenizer_path) if tokenizer_path else None
    built = build_from_config(config)
    summary = split_summary(built.splits)
    console = Console()
    console.print(f"data: {built.source}")
    console.print(_mix_table(summary["category_mix"], summary["counts"],
                             DEFAULT_MIX if config.data.dataset == "builtin" else None))
    table = Table(title="token lengths (prompt + answer + EOS)")
    for column in ("split", "count", "p50", "p95", "max", f"> max_length {config.data.max_length}"):
        table.add_column(column, justify="right" if column != "split" else "left")
    method = ""
    for name, rows in built.splits.items():
        stats = token_length_stats(rows, tokenizer, config.data.max_length)
        method = stats.method
        table.add_row(name, str(stats.count), str(stats.p50), str(stats.p95), str(stats.max), str(stats.over_max))
    console.print(table)
    source = f" from {tokenizer_path}" if tokenizer else " (pass --tokenizer PATH for exact counts)"
    console.print(f"lengths: {method}{source}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from carexpert.dataset import check_user_dataset

    config = _config(args)
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    max_length = args.max_length or config.data.max_length
    _, report = check_user_dataset(args.path, tokenizer=tokenizer, max_length=max_length if tokenizer else None)
    if report.problems:
        raise UserError(f"{len(report.bad_lines)} bad record(s) out of {report.total}", where=report.path,
                        details=report.listed_problems(),
                        fix="fix those lines, or set data.skip_bad_records = true to train without them")
    console = Console()
    console.print(f"[green]ok[/green] {report.summary()}")
    if not tokenizer:
        console.print("lengths not checked in tokens (pass --tokenizer PATH to check max_length)")
    return 0


def load_tokenizer(path: str) -> Any:
    """A Hugging Face tokenizer from a folder or hub id; a UserError when it can't be loaded."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds; all mean "no usable tokenizer"
        raise UserError(f"cannot load a tokenizer from {path!r} ({type(exc).__name__}: {exc})",
                        fix="pass a local model folder that contains tokenizer files") from None


def local_model_tokenizer(config: Config) -> str | None:
    """model.base_model when it is a local folder that holds a tokenizer (no download, no conversion)."""
    folder = Path(str(config.model.base_model)).expanduser()
    if folder.is_dir() and any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json")):
        return str(folder)
    return None


def _config(args: argparse.Namespace) -> Any:
    from carexpert.config import load_or_default

    return load_or_default(args.config)


def _split_rows(config: Config, split: str) -> tuple[list[dict[str, Any]], str]:
    """Rows from the built data folder when it exists and matches, else built in memory."""
    from carexpert.dataset import build_from_config, read_splits

    folder = Path(config.data.data_dir)
    if (folder / "manifest.json").exists():
        return read_splits(folder)[split], str(folder)
    return build_from_config(config).splits[split], f"{config.data.dataset} (in memory; not built yet)"


def _mix_table(mix: dict[str, dict[str, int]], counts: dict[str, int], target: dict[str, float] | None = None) -> Table:
    table = Table(title="category mix")
    table.add_column("category")
    splits = list(counts)
    for name in splits:
        table.add_column(name, justify="right")
    table.add_column("share", justify="right")
    if target:
        table.add_column("target", justify="right")
    total = sum(counts.values()) or 1
    for category in sorted({c for m in mix.values() for c in m}):
        n_all = sum(mix[s].get(category, 0) for s in splits)
        row = [category, *(str(mix[s].get(category, 0)) for s in splits), f"{n_all / total:.1%}"]
        if target:
            row.append(f"{target.get(category, 0):.0%}")
        table.add_row(*row)
    table.add_row("[bold]total[/bold]", *(str(counts[s]) for s in splits), "100%", *(["100%"] if target else []))
    return table


def _record_panel(record: dict[str, Any]) -> Panel:
    body = Text()
    body.append("Q: ", style="bold cyan")
    body.append(record["instruction"])
    if record.get("input"):
        body.append("\n   " + record["input"], style="italic")
    body.append("\nA: ", style="bold green")
    body.append(record["output"])
    extras = []
    if record.get("fact_ids"):
        extras.append("facts: " + ", ".join(record["fact_ids"]))
    if record.get("reference"):
        extras.append("reference: " + ", ".join(f"{k}={v}" for k, v in record["reference"].items()))
    if record.get("key_terms"):
        extras.append("key terms: " + ", ".join(record["key_terms"]))
    if record.get("expect_refusal"):
        extras.append("expects a refusal (made-up model)")
    if extras:
        body.append("\n" + "\n".join(extras), style="dim")
    title = f"{record.get('category', 'user')} · {record.get('kind', '')} · {record.get('id', '')}"
    return Panel(body, title=title, title_align="left")
