"""``carexpert runs list|show|watch|stop|resume|delete``, and the live progress display.

``show_progress`` is the one rich display of a live run; ``carexpert train`` (when
not detached) and ``runs watch`` both use it. It reads events through
``carexpert.runs.watch.follow_run``, the same reader the app uses.

Everything shown here that comes from a run's files (state, error, advice, notices,
device names, paths) goes through ``carexpert.textsafe`` first: as plain text it
loses terminal controls, inside markup it is escaped too.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from carexpert.cli.main import add_config_option
from carexpert.config import load_or_default
from carexpert.errors import UserError
from carexpert.runs.control import RunInfo, delete_run, find_run, list_runs, run_info, stop_run
from carexpert.runs.paths import RunPaths
from carexpert.runs.watch import RunProgress, follow_run
from carexpert.textsafe import safe_block, safe_markup

STATE_STYLE = {"running": "green", "pending": "cyan", "stopping": "yellow", "stopped": "yellow",
               "finished": "bold green", "failed": "bold red", "dead": "bold red", "unknown": "dim"}


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
            from carexpert.cli.train import add_launch_options

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
    from carexpert.training import guard

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
                  f"loss {_num(progress.loss)}  val_loss {_num(progress.val_loss)}  "
                  f"perplexity {_num(progress.perplexity)}")
    for path in guard.checkpoints_newest_first(info.paths.checkpoints):
        console.print(f"checkpoint {safe_markup(path.name)}: "
                      f"{'complete' if guard.is_complete(path) else 'INCOMPLETE (not used)'}")
    if info.paths.adapter.exists():
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
    from carexpert.cli.train import launch_and_follow

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


def _num(value: float | None) -> str:
    """A figure from an event (which may hold anything) with four decimals, or a dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value:.4f}"


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "—"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def show_progress(paths: RunPaths, console: Console, *, from_start: bool = True,
                  should_stop: Callable[[], bool] = lambda: False) -> RunProgress:
    """Draw a live progress bar for a run until it ends; returns the final picture.

    ``from_start=False`` draws only what happens next, starting from the latest figures.
    """
    from carexpert.runs.events import read_events

    state = RunProgress(run_id=paths.run_id)
    for event in [] if from_start else read_events(paths.events):
        state.update(event)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} tok/s  "
                          "eta {task.fields[eta]}")]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(paths.run_id, total=state.max_steps, completed=state.step, loss=_num(state.loss),
                            lr="—", speed="—", eta="—")
        for event in follow_run(paths, from_start=from_start, should_stop=should_stop):
            state.update(event)
            kind = event["type"]
            if kind == "step":
                bar.update(task, completed=state.step, total=state.max_steps, loss=_num(state.loss),
                           lr=f"{state.lr:.2e}" if state.lr is not None else "—",
                           speed=f"{state.tokens_per_s:.0f}" if state.tokens_per_s else "—", eta=_eta(state.eta_s))
            elif kind == "eval":
                bar.console.print(f"step {event.get('step')}: val_loss {_num(event.get('val_loss'))}  "
                                  f"perplexity {_num(event.get('perplexity'))}")
            elif kind == "checkpoint":
                bar.console.print(f"[dim]checkpoint saved at step {event.get('step')}[/dim]")
            elif kind == "notice":
                bar.console.print(f"[yellow]note:[/yellow] {safe_markup(event.get('message'), 2000)}", highlight=False)
            elif kind == "summary":
                bar.console.print(f"{_count(event.get('trainable_params'))} trainable of "
                                  f"{_count(event.get('total_params'))} parameters "
                                  f"({_num(event.get('trainable_percent'))}%) on {safe_markup(event.get('device'))}, "
                                  f"{safe_markup(event.get('precision'))}, {safe_markup(event.get('optimizer'))}",
                                  highlight=False)
            elif kind == "status":
                bar.update(task, description=f"{paths.run_id} [{STATE_STYLE.get(state.state, '') or 'default'}]"
                                             f"{safe_markup(state.state)}[/]")
            elif kind == "stalled":
                bar.console.print(f"[yellow]no step for {_num(event.get('seconds_since_step'))}s[/yellow]")
    return state


def print_ending(console: Console, paths: RunPaths, state: str, progress: RunProgress) -> None:
    """Say how the run ended and what to do next."""
    from carexpert.training.advice import config_set_command

    run_id = paths.run_id
    if state == "finished":
        console.print(f"[bold green]finished[/bold green] at step {progress.step}: adapter in {paths.adapter} "
                      f"— next: carexpert eval {run_id}", highlight=False)
    elif state == "stopped":
        console.print(f"[yellow]stopped[/yellow] at step {progress.step} — continue with: carexpert runs resume {run_id}")
    elif state == "dead" and progress.state == "failed" and progress.error:
        # The trainer logged its failure but could not record it in status.json (a full disk, say).
        console.print(f"[bold red]failed[/bold red] (its status file could not be updated): "
                      f"{safe_block(progress.error)}", highlight=False)
        console.print(f"after fixing that, continue from its last checkpoint with: carexpert runs resume {run_id}")
    elif state == "dead":
        console.print(f"[bold red]dead[/bold red]: the process is gone (killed or the machine restarted) — "
                      f"continue from its last checkpoint with: carexpert runs resume {run_id}")
    elif state == "failed":
        console.print(f"[bold red]failed:[/bold red] {safe_block(progress.error or 'see train.log')}", highlight=False)
        for item in progress.advice:
            text = item.get("text") if isinstance(item, dict) else str(item)
            command = config_set_command(item) if isinstance(item, dict) and item.get("changes") else ""
            console.print(f"  - {safe_block(text)}" + (f"\n      {safe_markup(command, 2000)}" if command else ""),
                          highlight=False)
