"""``carexpert check [--json]``: describe this machine and whether the config can run on it.

Exit status: 0 when no check fails (warnings allowed), 1 when at least one fails, 2 for
a bad config file. ``--json`` prints a stable schema for scripts:
``{"version": 1, "checks": [{"name", "status", "detail", "fix"}], "summary": {"pass", "warn", "fail"}}``.
"""

from __future__ import annotations

import argparse
import json

from carexpert.cli.main import add_config_option
from carexpert.config import load_or_default

JSON_VERSION = 1
STYLES = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="check Python, packages, GPUs, bitsandbytes, RAM, disk and the model",
        description="Check this machine against the configuration. Exit status 0 when nothing fails "
                    "(warnings allowed), 1 when a check fails, 2 when the config file is invalid.")
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON (schema version 1)")
    parser.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from carexpert.system import (  # imports torch: only when checking
        run_checks,
        summarize,
    )

    config = load_or_default(args.config)
    results = run_checks(config)
    counts = summarize(results)
    if args.json:
        print(json.dumps({"version": JSON_VERSION, "checks": [r.to_dict() for r in results], "summary": counts},
                         indent=2))
    else:
        print_table(results, counts)
    return 1 if counts["fail"] else 0


def print_table(results: list, counts: dict[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="carexpert check", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("result")
    table.add_column("fix", style="italic")
    for result in results:
        table.add_row(Text(result.status.upper(), style=STYLES[result.status]), result.name, result.detail,
                      result.fix)
    console = Console()
    console.print(table)
    console.print(f"{counts['pass']} passed, {counts['warn']} warning(s), {counts['fail']} failed")
