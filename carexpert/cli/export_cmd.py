"""``carexpert export RUN --merged OUT [--gguf FILE.gguf]``: a verified stand-alone model.

Writes the adapter merged into the base weights (loads with plain transformers),
optionally a GGUF file, and checks each by loading it back and comparing greedy
answers with the adapter's. Exit status 0: verified; 1: an answer differed (the
export is left at OUT.tmp for inspection, OUT is untouched); 2: bad input.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table
from rich.text import Text

from carexpert.cli.main import add_config_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="merge a run's adapter into a plain model folder (and GGUF), verified")
    parser.add_argument("run", metavar="RUN", help="run id or run folder")
    parser.add_argument("--merged", metavar="OUT", required=True, help="folder to write the merged model to")
    parser.add_argument("--gguf", metavar="FILE", help="also write a GGUF file (Llama and Gemma 3 models)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"),
                        help="weight type of the export (default: bfloat16)")
    parser.add_argument("--force", action="store_true", help="replace OUT / FILE if they exist")
    add_config_option(parser)
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from transformers.utils import logging as transformers_logging

    from carexpert.chat.sanitize import sanitize_output
    from carexpert.chat.source import run_adapter
    from carexpert.config import load_or_default
    from carexpert.errors import UserError
    from carexpert.export import export_merged
    from carexpert.export.gguf_export import export_gguf

    console = Console(highlight=False)
    found = run_adapter(load_or_default(args.config), args.run)
    out = Path(args.merged)
    if args.gguf:
        gguf = Path(args.gguf)
        if gguf.suffix != ".gguf":
            raise UserError("the GGUF file name must end in .gguf", where=str(gguf))
        if gguf.exists() and not args.force:  # refuse before the slow part
            raise UserError("already exists", where=str(gguf), fix="pass --force to replace it, or pick another path")
    transformers_logging.disable_progress_bar()

    def say(message: str) -> None:
        console.print(Text(sanitize_output(message), style="dim"))

    result = export_merged(found.config, found.adapter_dir, out, force=args.force, dtype=args.dtype,
                           progress=say, source={"run": found.run.run_id})
    print_checks(console, "merged export", result.checks)
    if not result.ok:
        console.print(Text(f"verification failed: the export is left at {result.out} for inspection; "
                           f"{out} was not written", style="bold red"))
        return 1
    console.print(Text(f"wrote {out} (loads with AutoModelForCausalLM.from_pretrained)", style="green"))
    if args.gguf:
        checks = export_gguf(out, args.gguf, result.reference, found.config.chat.system_prompt or None,
                             force=args.force, progress=say)
        print_checks(console, "GGUF", checks)
        if not all(check.ok for check in checks):
            console.print(Text("GGUF verification failed: left at "
                               f"{Path(args.gguf).with_name(Path(args.gguf).stem + '.tmp.gguf')}", style="bold red"))
            return 1
        console.print(Text(f"wrote {args.gguf}", style="green"))
    return 0


def print_checks(console: Console, title: str, checks: list) -> None:
    """One row per check question: did the export answer exactly like the adapter?"""
    from carexpert.chat.sanitize import sanitize_output

    table = Table(title=f"{title}: greedy answers vs the adapter's", title_justify="left")
    table.add_column("question")
    table.add_column("result")
    table.add_column("details")
    colours = {"match": "green", "near-tie": "yellow", "mismatch": "red"}
    for check in checks:
        details = []
        if check.first_difference is not None:
            details.append(f"first difference at token {check.first_difference}")
        if check.margins:
            details.append(f"margins {check.margins[0]:.3f}/{check.margins[1]:.3f}")
        if check.note:
            details.append(check.note)
        table.add_row(Text(check.question), Text(check.status, style=colours.get(check.status, "")),
                      Text(sanitize_output("; ".join(details))))
    console.print(table)
