"""Entry point of the ``carexpert`` command.

Each sub-command lives in its own module exposing ``register(subparsers)``; the
parser sets ``func`` to call with the parsed args. Every ``UserError`` is printed
as a plain message with exit status 2; a traceback would be a bug, so unexpected
errors are printed briefly too, with the full traceback only under
``CAREXPERT_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from carexpert import __version__
from carexpert.errors import UserError

# Sub-command modules under carexpert.cli, in the order `--help` lists them.
COMMAND_MODULES = ["config_cmd", "check", "data", "estimate_cmd", "train", "runs_cmd", "compare_cmd", "chat_cmd", "serve_cmd", "export_cmd", "eval_cmd", "kb_cmd"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carexpert",
        description="Fine-tune an open LLM into a cars & automotive expert (QLoRA), evaluate it and chat with it.")
    parser.add_argument("--version", action="version", version=f"carexpert {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"carexpert.cli.{name}").register(subparsers)
    return parser


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The shared ``--config`` option (default: $CAREXPERT_CONFIG or ./carexpert.toml)."""
    parser.add_argument("--config", "-c", metavar="FILE", default=None,
                        help="config file (default: $CAREXPERT_CONFIG or ./carexpert.toml; built-in defaults if absent)")


def print_error(error: UserError) -> None:
    print(f"error: {error.render()}", file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
        return int(result or 0)
    except UserError as error:
        print_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error worth a message
        _silence_stdout()
        return 0
    except Exception as error:  # noqa: BLE001 - a bug: say so plainly, keep the traceback for debugging
        if os.environ.get("CAREXPERT_DEBUG"):
            traceback.print_exc()
        print(f"error: unexpected {type(error).__name__}: {error}\n"
              "this is a bug in carexpert; run with CAREXPERT_DEBUG=1 for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
