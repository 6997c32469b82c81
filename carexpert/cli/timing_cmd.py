"""The time estimate the ``estimate`` and ``train`` commands print: one owner for both.

``--quick`` swaps the config for the quick profile sized on this machine; otherwise the
configured run is timed with the (cached) probe. Progress goes to stderr so that
``--json`` leaves stdout to the one JSON line the app reads.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="the quick profile: settings and a step count sized to finish in about 15 minutes "
                             "on this machine (for a CPU without a GPU)")
    parser.add_argument("--reprobe", action="store_true",
                        help="time the training steps again instead of using this machine's cached measurement")


def cuda_available() -> bool:
    import torch  # the probe needs it anyway

    return torch.cuda.is_available()


def timed_config(config: Any, args: argparse.Namespace, *, quiet: bool = False) -> tuple[Any, Any, list[str]]:
    """(config to train, its RunTime, the quick profile's changes) for this machine."""
    from carexpert.training.probe import estimate_run_time
    from carexpert.training.quick import quick_changes, quick_profile

    err = Console(stderr=True, highlight=False)

    def progress(message: str) -> None:
        if not quiet:
            err.print(f"[dim]time estimate: {message}…[/dim]")

    if getattr(args, "quick", False):
        sized, runtime = quick_profile(config, cuda=cuda_available(), reprobe=args.reprobe, progress=progress)
        return sized, runtime, quick_changes(config, sized)
    world_size = max(1, getattr(args, "gpus", 1) or 1)  # data-parallel ranks share the tokens
    return config, estimate_run_time(config, reprobe=args.reprobe, world_size=world_size, progress=progress), []


def print_time(console: Console, runtime: Any, changes: list[str]) -> None:
    from carexpert.training.timing import long_run_warning, time_line

    if changes:
        console.print("quick profile: " + "; ".join(changes), highlight=False, soft_wrap=True)
    console.print(f"time: {time_line(runtime)}", highlight=False, soft_wrap=True)
    warning = long_run_warning(runtime)
    if warning:
        console.print(f"[bold yellow]warning: {warning}[/bold yellow]", highlight=False, soft_wrap=True)


def confirm_long_run(console: Console, runtime: Any, *, yes: bool, detach: bool) -> bool:
    """Whether to start a run longer than an hour.

    ``--yes``: start. ``--detach`` (the app, scripts that return at once): start after the
    printed warning. On a terminal: ask. Otherwise (a script that would wait for hours):
    refuse, naming ``--yes``.
    """
    from carexpert.errors import UserError
    from carexpert.training.timing import duration_words

    if not runtime.long or yes:
        return True
    if detach:
        console.print("[bold yellow]starting it anyway: --detach (pass --yes to skip the estimate)[/bold yellow]")
        return True
    if not sys.stdin.isatty():
        raise UserError(f"this run would take {duration_words(runtime.total_seconds)} on this machine",
                        fix="pass --yes to start it anyway, or --quick for a short run")
    answer = console.input("Start this run anyway? [y/N] ").strip().lower()
    return answer in ("y", "yes")
