"""Entry point of the ``carexpert`` command.

Each sub-command lives in its own module exposing ``register(subparsers)``; the
parser sets ``func`` to call with the parsed args. Every ``UserError`` is printed
as a plain message with exit status 2; a traceback would be a bug, so unexpected
errors are printed briefly too, with the full traceback only under
``CAREXPERT_DEBUG=1``.

Some failures are the machine's, not carexpert's, wherever they happen: a full disk,
a read-only folder, a file the user may not read, a link that loops. Those become
a plain message naming the file, with exit status 2 (``environment_error``).
"""

from __future__ import annotations

import argparse
import errno
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
    """Print a UserError; names and values from the user's files cannot reach the terminal as controls."""
    from carexpert.textsafe import strip_controls

    print(f"error: {strip_controls(error.render())}", file=sys.stderr)


_ENVIRONMENT_FIXES = {
    errno.ENOSPC: "free disk space and run the command again (files carexpert replaces are kept whole)",
    errno.EDQUOT: "free space within your disk quota and run the command again",
    errno.EROFS: "the file system is read-only: use a writable location (--config FILE, train.runs_dir)",
    errno.EACCES: "you may not read or write there: fix its permissions or use another location",
    errno.EPERM: "you may not read or write there: fix its permissions or use another location",
    errno.ELOOP: "a symbolic link points at itself (a loop): fix or remove the link",
    errno.ENAMETOOLONG: "use a shorter path",
}


def environment_error(error: OSError) -> UserError | None:
    """A UserError for an OSError the user can fix (full disk, read-only, permissions); None for others."""
    fix = _ENVIRONMENT_FIXES.get(error.errno) if error.errno is not None else None
    if fix is None or error.errno is None:
        return None
    where = error.filename if isinstance(error.filename, (str, bytes, os.PathLike)) else ""
    return UserError(error.strerror or os.strerror(error.errno), where=os.fsdecode(where) if where else "", fix=fix)


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
    except OSError as error:
        known = environment_error(error)
        if known is None:
            return _bug(error)
        print_error(known)
        return known.exit_code
    except RecursionError:  # each reader turns its own; this is the last net for one that does not
        print_error(UserError("an input is nested too deeply to read (thousands of levels of [ or {)",
                              fix="check the files this command reads (config, dataset, eval cases) for "
                                  "runaway nesting"))
        return 2
    except Exception as error:  # noqa: BLE001 - a bug: say so plainly, keep the traceback for debugging
        return _bug(error)


def _bug(error: BaseException) -> int:
    """Report an unexpected error briefly (the traceback only under CAREXPERT_DEBUG=1); exit status 1."""
    if os.environ.get("CAREXPERT_DEBUG"):
        traceback.print_exception(error)
    print(f"error: unexpected {type(error).__name__}: {error}\n"
          "this is a bug in carexpert; run with CAREXPERT_DEBUG=1 for the traceback", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
