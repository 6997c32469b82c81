"""``carexpert train [--config F] [--run-id ID] [--detach] [--resume RUN] [--force] [--gpus N]``.

The run always trains in its own process, in its own session, writing to its run
folder. Without ``--detach`` this command stays to show progress: Ctrl-C asks the
run to stop (checkpoint, then exit); a second Ctrl-C leaves the run going and
returns. If the terminal or SSH link goes away, the run keeps training — reattach
with ``carexpert runs watch RUN``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from pathlib import Path
from typing import Any

from rich.console import Console

from carexpert.cli.main import add_config_option
from carexpert.cli.run_display import print_ending, show_progress
from carexpert.cli.timing_cmd import add_timing_options, confirm_long_run, print_time, timed_config
from carexpert.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="fine-tune the base model (QLoRA) in a run that survives the terminal")
    add_config_option(parser)
    parser.add_argument("--run-id", metavar="ID", help="name of the new run (default: run-<date>-<time>-<hex>)")
    parser.add_argument("--resume", metavar="RUN", help="continue RUN from its last complete checkpoint")
    add_launch_options(parser)
    add_timing_options(parser)
    parser.add_argument("--yes", "-y", action="store_true",
                        help="start without the time estimate and its warning for runs over an hour")
    parser.set_defaults(func=run_train)


def add_launch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach", action="store_true",
                        help="start in the background, print the run id and return")
    parser.add_argument("--force", action="store_true",
                        help="resume even though the config or data changed since the checkpoint")
    parser.add_argument("--gpus", type=int, default=1, metavar="N", help="train on N GPUs (DDP, one process per GPU)")


def run_train(args: argparse.Namespace) -> int:
    if args.resume and args.quick:
        raise UserError("--quick starts a new run; it cannot resume one", fix=f"drop --quick to resume {args.resume}")
    if args.resume:
        from carexpert.config import load_or_default
        from carexpert.runs.control import find_run

        return launch_and_follow(args, resume=find_run(load_or_default(args.config).train.runs_dir, args.resume))
    return launch_and_follow(args, resume=None)


def _check_gpus(count: int) -> None:
    if count < 1:
        raise UserError(f"--gpus {count}: need at least 1")
    if count == 1:
        return
    import torch  # only when more than one GPU is asked for

    available = torch.cuda.device_count()
    if count > available:
        raise UserError(f"--gpus {count} asked, {available} CUDA GPU(s) visible",
                        fix=f"use --gpus {available}" if available > 1 else "train on one device without --gpus")


def launch_and_follow(args: argparse.Namespace, *, resume: Any) -> int:
    """Start (or resume) a run as its own process, then follow it unless ``--detach``."""
    from carexpert.config import load_or_default
    from carexpert.training.start import resume_run, start_new_run

    _check_gpus(args.gpus)
    console = Console()
    if resume is not None:
        config_path = Path(args.config) if args.config else None
        started = resume_run(resume, config_path=config_path, force=args.force, processes=args.gpus)
        where = f"step {started.resumed_from}" if started.resumed_from is not None else "the start (no checkpoint yet)"
        console.print(f"resuming {started.paths.run_id} from {where}")
        for change in started.changes or []:
            console.print(f"[yellow]changed (--force):[/yellow] {change}")
    else:
        config = load_or_default(args.config)
        if args.quick or not args.yes:  # time before work: steps, tokens, a measured probe
            config, runtime, changes = timed_config(config, args)
            print_time(console, runtime, changes)
            if not confirm_long_run(console, runtime, yes=args.yes, detach=args.detach):
                console.print("not started")
                return 1
        started = start_new_run(config, run_id=args.run_id, processes=args.gpus)
        console.print(f"started run [bold]{started.paths.run_id}[/bold] in {started.paths.root}")
    if args.detach:
        console.print(f"watch: carexpert runs watch {started.paths.run_id}    "
                      f"stop: carexpert runs stop {started.paths.run_id}    log: {started.paths.log}",
                      highlight=False, soft_wrap=True)
        print(started.paths.run_id, flush=True)  # last, alone on its line: scripts and the app read it
        return 0
    return follow_started(started, console)


def follow_started(started: Any, console: Console) -> int:
    """Show progress; Ctrl-C once stops the run (checkpoint), twice leaves it running."""
    from carexpert.runs.control import run_info, stop_run

    presses = 0

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            info = run_info(started.paths)
            if info.live:
                with contextlib.suppress(UserError):  # it ended on its own meanwhile: the display shows how
                    stop_run(info)
            console.print("[yellow]stopping: saving a checkpoint at the next step "
                          "(Ctrl-C again to leave it running in the background)[/yellow]")
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        progress = show_progress(started.paths, console)
    except KeyboardInterrupt:
        console.print(f"left run {started.paths.run_id} running; watch it with: "
                      f"carexpert runs watch {started.paths.run_id}")
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        code = started.process.wait(timeout=60)
    except Exception:  # noqa: BLE001 - a process that will not exit is reported by its state below
        code = None
    state = run_info(started.paths).state
    print_ending(console, started.paths, state, progress)
    if code is not None and code != 0:
        return code
    return 0 if state in ("finished", "stopped") else 1
