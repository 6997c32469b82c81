"""``carexpert runs list|show|watch|stop|resume|delete``.

The live display is ``carexpert.cli.run_display`` (shared with ``carexpert train``);
``runs resume`` starts the run the way ``carexpert train --resume`` does.

Everything shown here that comes from a run's files (state, error, advice, notices,
device names, paths) goes through ``carexpert.textsafe`` first: as plain text it
loses terminal controls, inside markup it is escaped too.
"""

from __future__ import annotations

import argparse
import socket
import time

from rich.console import Console
from rich.table import Table

from carexpert.cli.main import add_config_option
from carexpert.cli.run_display import STATE_STYLE, num, print_ending, show_progress
from carexpert.cli.train import add_launch_options, launch_and_follow
from carexpert.config import load_or_default
from carexpert.errors import UserError
from carexpert.runs import checkpoints
from carexpert.runs.artifacts import has_adapter
from carexpert.runs.control import RunInfo, delete_run, find_run, list_runs, run_info, stop_run
from carexpert.runs.watch import RunProgress
from carexpert.textsafe import safe_markup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("runs", help="list, inspect, watch, stop, resume or delete training runs")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every run with its state ('dead' = killed, resumable)")
    add_config_option(listing)
    listing.set_defaults(func=run_list)
    for name, func, text in [("show", run_show, "a run's status, progress, checkpoints and error"),
                             ("watch", run_watch, "follow a run live until it ends (Ctrl-C stops watching only)"),
                             ("stop", run_stop, "stop a run: it saves a checkpoint at the next step and exits"),
                             ("resume", run_resume, "continue a stopped, failed or dead run from its last checkpoint"),
                             ("delete", run_delete, "delete a run folder (refuses a live run)")]:
        sub = actions.add_parser(name, help=text)
        add_config_option(sub)
        sub.add_argument("run", metavar="RUN", help="run id (see 'carexpert runs list') or a run folder path")
        sub.set_defaults(func=func)
        if name == "stop":
            sub.add_argument("--wait", action="store_true", help="wait until it has stopped")
        if name == "resume":
            add_launch_options(sub)
        if name == "delete":
            sub.add_argument("--yes", action="store_true", help="really delete it")


def _runs_dir(args: argparse.Namespace) -> str:
    return load_or_default(args.config).train.runs_dir


def _find(args: argparse.Namespace) -> RunInfo:
    return find_run(_runs_dir(args), args.run)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def run_list(args: argparse.Namespace) -> int:
    runs = list_runs(_runs_dir(args))
    console = Console()
    if not runs:
        console.print(f"no runs in {_runs_dir(args)} — start one with 'carexpert train'")
        return 0
    table = Table()
    for column in ("run", "state", "step", "updated", "pid"):
        table.add_column(column)
    for info in runs:
        status = info.status
        step = f"{status.step}/{status.max_steps}" if status and status.max_steps else str(status.step if status else "")
        style = STATE_STYLE.get(info.state, "")
        state = safe_markup(info.state)
        table.add_row(safe_markup(info.run_id), f"[{style}]{state}[/{style}]" if style else state, step,
                      _age(time.time() - status.updated) if status else "", str(status.pid or "") if status else "")
    console.print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from carexpert.runs.events import read_events

    info = _find(args)
    progress = RunProgress(run_id=info.run_id)
    for event in read_events(info.paths.events):
        progress.update(event)
    if info.status is not None and info.status.error and info.state == "failed":
        progress.error = progress.error or info.status.error  # recorded in status.json, e.g. when the log could not be
    console = Console()
    console.print(f"[bold]{safe_markup(info.run_id)}[/bold]  {safe_markup(info.paths.root)}", highlight=False)
    console.print(f"state: [{STATE_STYLE.get(info.state, '') or 'default'}]{safe_markup(info.state)}[/]"
                  + (f"  (pid {info.status.pid} on {safe_markup(info.status.host)})" if info.status else ""),
                  highlight=False)
    console.print(f"step {progress.step}/{progress.max_steps or '?'}  epoch {progress.epoch:.2f}  "
                  f"loss {num(progress.loss)}  val_loss {num(progress.val_loss)}  "
                  f"perplexity {num(progress.perplexity)}")
    for path in checkpoints.checkpoints_newest_first(info.paths.checkpoints):
        console.print(f"checkpoint {safe_markup(path.name)}: "
                      f"{'complete' if checkpoints.is_complete(path) else 'INCOMPLETE (not used)'}")
    if has_adapter(info.paths):
        console.print(f"adapter: {safe_markup(info.paths.adapter)}", highlight=False)
    for notice in progress.notices:
        console.print(f"[yellow]note:[/yellow] {safe_markup(notice, 2000)}", highlight=False)
    print_ending(console, info.paths, info.state, progress)
    return 0


def run_watch(args: argparse.Namespace) -> int:
    info = _find(args)
    refuse_other_host(info, "watch")
    console = Console()
    try:
        progress = show_progress(info.paths, console)
    except KeyboardInterrupt:
        console.print("stopped watching; the run goes on")
        return 0
    final = run_info(info.paths).state
    print_ending(console, info.paths, final, progress)
    return 0 if final in ("finished", "stopped") else 1


def run_stop(args: argparse.Namespace) -> int:
    info = _find(args)
    pid = stop_run(info)
    console = Console()
    console.print(f"asked run {safe_markup(info.run_id)} (pid {pid}) to stop: it saves a checkpoint at the next step")
    if args.wait:
        progress = show_progress(info.paths, console, from_start=False)
        print_ending(console, info.paths, run_info(info.paths).state, progress)
    return 0


def run_resume(args: argparse.Namespace) -> int:
    return launch_and_follow(args, resume=_find(args))


def run_delete(args: argparse.Namespace) -> int:
    info = _find(args)
    delete_run(info, yes=args.yes)
    Console().print(f"deleted {safe_markup(info.paths.root)}", highlight=False)
    return 0


def refuse_other_host(info: RunInfo, verb: str) -> None:
    """A live run on another machine cannot be followed to its end from here: say so instead of waiting forever."""
    host = info.status.host if info.status else None
    if info.live and host and host != socket.gethostname():
        raise UserError(f"run {info.run_id} trains on host {host!r}, not on this one; from here carexpert cannot "
                        "tell whether it is still alive, so it would wait forever", where=str(info.paths.root),
                        fix=f"run 'carexpert runs {verb} {info.run_id}' on {host}, or 'carexpert runs show "
                            f"{info.run_id}' here for its last recorded state")
