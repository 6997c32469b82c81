"""The live display of a run in the terminal, and how it ended.

``show_progress`` is the one rich display of a live run; ``carexpert train`` (when not
detached), ``runs watch`` and ``runs stop --wait`` all use it. It reads events through
``carexpert.runs.watch.follow_run``, the same reader the app uses. It lives apart from the
commands so that both command modules import it and neither imports the other's helpers back.

Everything shown here that comes from a run's files (state, error, advice, notices, device
names, paths) goes through ``carexpert.textsafe`` first: as plain text it loses terminal
controls, inside markup it is escaped too.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from carexpert.runs.paths import RunPaths
from carexpert.runs.watch import RunProgress, follow_run
from carexpert.textsafe import safe_block, safe_markup

STATE_STYLE = {"running": "green", "pending": "cyan", "stopping": "yellow", "stopped": "yellow",
               "finished": "bold green", "failed": "bold red", "dead": "bold red", "unknown": "dim"}


def num(value: float | None) -> str:
    """A figure from an event (which may hold anything) with four decimals, or a dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value:.4f}"


def _count(value: object) -> str:
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
        task = bar.add_task(paths.run_id, total=state.max_steps, completed=state.step, loss=num(state.loss),
                            lr="—", speed="—", eta="—")
        for event in follow_run(paths, from_start=from_start, should_stop=should_stop):
            state.update(event)
            kind = event["type"]
            if kind == "step":
                bar.update(task, completed=state.step, total=state.max_steps, loss=num(state.loss),
                           lr=f"{state.lr:.2e}" if state.lr is not None else "—",
                           speed=f"{state.tokens_per_s:.0f}" if state.tokens_per_s else "—", eta=_eta(state.eta_s))
            elif kind == "eval":
                bar.console.print(f"step {event.get('step')}: val_loss {num(event.get('val_loss'))}  "
                                  f"perplexity {num(event.get('perplexity'))}")
            elif kind == "checkpoint":
                bar.console.print(f"[dim]checkpoint saved at step {event.get('step')}[/dim]")
            elif kind == "notice":
                bar.console.print(f"[yellow]note:[/yellow] {safe_markup(event.get('message'), 2000)}", highlight=False)
            elif kind == "summary":
                bar.console.print(f"{_count(event.get('trainable_params'))} trainable of "
                                  f"{_count(event.get('total_params'))} parameters "
                                  f"({num(event.get('trainable_percent'))}%) on {safe_markup(event.get('device'))}, "
                                  f"{safe_markup(event.get('precision'))}, {safe_markup(event.get('optimizer'))}",
                                  highlight=False)
            elif kind == "status":
                bar.update(task, description=f"{paths.run_id} [{STATE_STYLE.get(state.state, '') or 'default'}]"
                                             f"{safe_markup(state.state)}[/]")
            elif kind == "stalled":
                bar.console.print(f"[yellow]no step for {num(event.get('seconds_since_step'))}s[/yellow]")
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
