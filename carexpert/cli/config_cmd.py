"""``carexpert config validate|show|explain [KEY]|set KEY=VALUE``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from carexpert.cli.main import add_config_option
from carexpert.config import (
    SECTION_DOCS,
    Config,
    config_to_toml,
    default_config_path,
    field_spec,
    field_specs,
    load_config,
    load_or_default,
    parse_value,
    update_user_file,
)
from carexpert.errors import UserError
from carexpert.textsafe import safe_markup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate, show, explain or change the configuration")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", help="check the config file and list every problem")
    add_config_option(validate)
    validate.add_argument("--no-probe", action="store_true",
                          help="skip the checks against this machine (GPU, bitsandbytes)")
    validate.set_defaults(func=run_validate)

    show = actions.add_parser("show", help="print the effective configuration as TOML")
    add_config_option(show)
    show.add_argument("--defaults", action="store_true", help="print the built-in defaults")
    show.set_defaults(func=run_show)

    explain = actions.add_parser("explain", help="document every key (or one KEY / one section)")
    explain.add_argument("key", nargs="?", help="section or section.key, e.g. train or train.batch_size")
    explain.set_defaults(func=run_explain)

    setter = actions.add_parser("set", help="change keys in the config file (comments kept, backup made)")
    add_config_option(setter)
    setter.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    setter.set_defaults(func=run_set)


def run_validate(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else default_config_path()
    config = load_config(path)
    from carexpert.modeling.resolve import local_model_problem  # offline: stat calls only

    model_problem = local_model_problem(config.model.base_model)
    if model_problem:
        raise UserError(f"model.base_model cannot work: {model_problem}", where=str(path),
                        fix="give a model folder with config.json and *.safetensors, a .gguf file, a hub id, "
                            "or 'embedded'")
    if not args.no_probe:
        from carexpert.system import compatibility_problems  # probes torch/bitsandbytes: only when asked

        problems = compatibility_problems(config)
        if problems:
            raise UserError(f"{len(problems)} setting(s) cannot work on this machine", where=str(path),
                            details=problems, fix="change those settings or run on a machine that supports them")
    Console().print(f"[green]ok[/green] {safe_markup(path)}: valid", highlight=False)
    return 0


def run_show(args: argparse.Namespace) -> int:
    config = Config() if args.defaults else load_or_default(args.config)
    print(config_to_toml(config), end="")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    specs = field_specs()
    if args.key:
        if "." in args.key:
            try:
                specs = [field_spec(args.key)]
            except KeyError:
                raise UserError(f"unknown key {args.key!r}", fix="run 'carexpert config explain' for all keys") from None
        else:
            specs = [s for s in specs if s.section == args.key]
            if not specs:
                raise UserError(f"unknown section {args.key!r}", fix="sections are " + ", ".join(SECTION_DOCS))
    table = Table(show_lines=False, expand=False)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("default")
    table.add_column("allowed")
    table.add_column("what it does")
    for spec in specs:
        table.add_row(spec.key, repr(spec.default), spec.allowed(), spec.doc)
    Console().print(table)
    return 0


def run_set(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else default_config_path()
    changes = {}
    for assignment in args.assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise UserError(f"expected KEY=VALUE, got {assignment!r}", fix="for example: carexpert config set train.batch_size=8")
        key = key.strip()
        try:
            changes[key] = parse_value(key, raw.strip())
        except KeyError:
            raise UserError(f"unknown key {key!r}", fix="run 'carexpert config explain' for all keys") from None
    backup = update_user_file(path, changes)
    note = f" (previous version kept as {backup})" if backup else ""
    Console().print(f"[green]saved[/green] {safe_markup(path)}{safe_markup(note)}", highlight=False)
    return 0
