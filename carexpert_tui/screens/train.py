"""Train mode: start, stop and resume runs, and watch one live.

Training never runs in the app: start, stop and resume are ``carexpert`` commands run
as child processes, and the run lives in its own session. The screen only reads the
run folder: a thread worker follows ``events.jsonl`` (and the tail of ``train.log``)
and hands what it read to the run view (``carexpert_tui.screens.train_run_view``) once
per refresh tick, one batch per tick (``carexpert_tui.run_feed``), so a run that logs
fast costs one screen update per tick, and a run started from the CLI, or before the
app opened, is watched exactly like one started here. Charts keep a decimated history. A run
driven by another process (live, or its lock held) is shown attached and read-only:
resume is off for it, so no doomed second trainer is spawned.
After an out-of-memory failure one key applies the trainer's advice and resumes
(``carexpert_tui.recovery``); runs marked with m are compared side by side with v.
s, q and e first measure the run's time and ask before a long or a quick run
(``carexpert_tui.screens.train_time``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, OptionList
from textual.worker import get_current_worker
from textual_plot import PlotWidget

from carexpert.runs import RunPaths
from carexpert_tui import child_commands, recovery
from carexpert_tui.messages import RunControlFinished, RunFollowed
from carexpert_tui.run_feed import RunFeed
from carexpert_tui.run_rows import RunRow
from carexpert_tui.screens.base import ModeScreen
from carexpert_tui.screens.compare import CompareScreen
from carexpert_tui.screens.confirm import ConfirmScreen
from carexpert_tui.screens.path_prompt import PathPrompt
from carexpert_tui.screens.train_run_view import RunView
from carexpert_tui.screens.train_time import TimeLine
from carexpert_tui.widgets.run_list import RunList

RESUMABLE = ("stopped", "failed", "dead")


class TrainScreen(ModeScreen):
    CSS_PATH = "train.tcss"
    BINDING_GROUP_TITLE = "Train"
    HELP_WIDGETS = (PlotWidget,)
    BINDINGS = [
        Binding("s", "start_training", "Start", id="start-training",
                tooltip="Start a run with the chosen config (its time is measured and shown first)"),
        Binding("q", "quick_run", "Quick", id="quick-run",
                tooltip="A short run sized to finish in about 15 minutes on this machine (no GPU needed)"),
        Binding("e", "estimate_time", "Time", id="estimate-time",
                tooltip="How long the configured run takes here: steps, tokens, a measured probe"),
        Binding("x", "stop_training", "Stop", id="stop-training",
                tooltip="Stop the selected run (it saves a checkpoint)"),
        Binding("r", "resume_training", "Resume", id="resume-training",
                tooltip="Resume the selected run from its last checkpoint"),
        Binding("a", "apply_advice", "Apply fix", id="apply-advice",
                tooltip="After out-of-memory: apply the suggested change to the config and resume"),
        Binding("m", "mark_run", "Mark", id="mark-run", tooltip="Mark the selected run for comparison"),
        Binding("v", "compare_runs", "Compare", id="compare-runs",
                tooltip="Overlay the marked runs' loss curves, config diff and evals"),
        Binding("c", "choose_config", "File", id="choose-config", tooltip="Train with another config file"),
    ]

    selected: reactive[str | None] = reactive(None, bindings=True)
    busy: reactive[bool] = reactive(False, bindings=True)

    def __init__(self) -> None:
        super().__init__()
        self.chosen_config: Path | None = None
        self.pending_select: str | None = None
        self.marked: frozenset[str] = frozenset()
        self.shown_bindings: tuple[bool | None, ...] = ()

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="train-main"):
            with Vertical(id="runs-box", classes="box"):
                yield Label(id="train-config")
                yield TimeLine(id="train-time")
                yield RunList(id="run-list")
            yield RunView(id="run-view")

    def on_mount(self) -> None:
        self.query_one("#runs-box").border_title = "Runs"
        self.watch(self.app, "runs", self.show_runs)
        self.watch(self.app, "config_path", lambda _path: self.show_config_choice())
        self.bindings_updated_signal.subscribe(self, self.note_bindings_shown, immediate=True)
        self.query_one(RunList).focus()

    @property
    def config_path(self) -> Path:
        return self.chosen_config or self.app.config_path

    def show_config_choice(self) -> None:
        missing = "" if self.config_path.exists() else " (absent: defaults)"
        self.query_one("#train-config", Label).update(f"config: {self.config_path}{missing}")

    def palette_commands(self):
        return [("train: start run", "Start training with the chosen config", self.action_start_training),
                ("train: stop run", "Stop the selected run", self.action_stop_training),
                ("train: resume run", "Resume the selected run", self.action_resume_training),
                ("train: compare marked runs", "Loss curves, config diff and evals", self.action_compare_runs),
                ("train: choose config", "Pick the config file to train with", self.action_choose_config)]

    # --- the runs list and the followed run --------------------------------------------------

    def selected_row(self) -> RunRow | None:
        return next((row for row in self.app.runs if row.run_id == self.selected), None)

    def show_runs(self, rows: tuple[RunRow, ...]) -> None:
        run_list = self.query_one(RunList)
        self.marked = frozenset(run_id for run_id in self.marked if any(r.run_id == run_id for r in rows))
        run_list.show_rows(rows, self.marked)
        if self.pending_select and run_list.select_run(self.pending_select):
            self.follow(self.pending_select)
            self.pending_select = None
        elif self.selected is None and rows:
            wanted = self.app.current_run if any(r.run_id == self.app.current_run for r in rows) else rows[0].run_id
            run_list.select_run(wanted)
            self.follow(wanted)
        self.show_title()
        self.refresh_bindings_if_changed()
        self.show_config_choice()

    @on(OptionList.OptionHighlighted, "#run-list")
    def run_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.follow(event.option.id)

    def follow(self, run_id: str) -> None:
        if run_id == self.selected:
            return
        self.selected = run_id
        self.app.current_run = run_id
        self.query_one(RunView).clear()
        self.show_title()
        row = self.selected_row()
        if row is not None:
            self.follow_run(row.paths, self.app.config.ui.refresh_seconds)

    def show_title(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.query_one(RunView).show_row(row)

    @work(thread=True, exclusive=True, exit_on_error=False, group="follow-run", description="Following the run")
    def follow_run(self, paths: RunPaths, tick_s: float) -> None:
        """Read the run's new events and log lines once a tick, until another run is chosen."""
        worker = get_current_worker()
        feed = RunFeed(paths)
        while not worker.is_cancelled:
            batch = feed.read()
            if batch:
                self.post_message(RunFollowed(paths.run_id, batch.events, batch.log_text))
            if not feed.behind:
                worker.cancelled_event.wait(tick_s)

    @on(RunFollowed)
    def apply_batch(self, message: RunFollowed) -> None:
        if message.run_id == self.selected:
            self.query_one(RunView).show_batch(message.events, message.log_text)

    # --- start, stop, resume ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.selected_row()
        if action in ("start_training", "quick_run", "estimate_time"):
            return None if self.busy or self.query_one(TimeLine).measuring else True
        if action == "stop_training":
            return True if row is not None and row.live and not self.busy else None
        if action == "resume_training":  # another process's run: shown, but off
            return True if row is not None and row.state in RESUMABLE and not (self.busy or row.attached) else None
        # Textual: False hides the key, None shows it dimmed
        if action == "apply_advice":
            fixable = row is not None and row.state == "failed" and recovery.first_fix(row.advice) is not None
            return (None if self.busy or row.attached else True) if fixable else False
        if action == "mark_run":
            return row is not None
        if action == "compare_runs":
            return len(self.marked) >= 2
        return True

    def binding_states(self) -> tuple[bool | None, ...]:
        return tuple(self.check_action(binding.action, ()) for binding in self.BINDINGS if isinstance(binding, Binding))

    def note_bindings_shown(self, _screen: object = None) -> None:
        """Whoever asked the footer to redraw (a reactive, this screen), it now shows these states."""
        self.shown_bindings = self.binding_states()

    def refresh_bindings_if_changed(self) -> None:
        """Redraw the footer only when one of this screen's keys changed state.

        The runs list is re-read every second while a run logs (its step moves on), and
        the footer rebuilds all its keys on each refresh: a needless rebuild per second
        is work the next key press waits behind.
        """
        if self.binding_states() != self.shown_bindings:
            self.refresh_bindings()

    def config_argument(self) -> Path | None:
        return self.config_path if self.config_path.exists() else None

    def action_start_training(self) -> None:
        self.estimate_then_start(quick=False, start=True)

    def action_quick_run(self) -> None:
        self.estimate_then_start(quick=True, start=True)

    def action_estimate_time(self) -> None:
        self.estimate_then_start(quick=False, start=False)

    @work(exclusive=True, exit_on_error=False, group="time-estimate", description="Timing the run")
    async def estimate_then_start(self, *, quick: bool, start: bool) -> None:
        """Time the run in a child process, show it, ask before a long or a quick run, then start."""
        action = await self.query_one(TimeLine).time_then_ask(self.config_argument(), quick=quick, start=start)
        if action:
            self.run_control(action)

    def refuse_if_attached(self) -> bool:
        """Re-check at the key press (the lock may have been taken since the last scan)."""
        from carexpert_tui.run_rows import lock_holder

        row = self.selected_row()
        locked, holder = lock_holder(row.paths) if row is not None else (False, None)
        if row is not None and (row.live or locked):
            owner = f"pid {holder or row.owner_pid}" if (holder or row.owner_pid) else "another process"
            self.notify(f"{row.run_id} is driven by {owner}: this app only watches it. "
                        "Stop that trainer first to resume here.", severity="warning", timeout=8)
            return True
        return False

    def action_resume_training(self) -> None:
        if self.selected and not self.refuse_if_attached():
            self.run_control("resume", self.selected)

    def action_apply_advice(self) -> None:
        row = self.selected_row()
        item = recovery.first_fix(row.advice) if row is not None else None
        if item is not None and not self.refuse_if_attached():
            self.apply_and_resume(row.paths, item)

    @work(exclusive=True, exit_on_error=False, group="run-control", description="Applying the advice")
    async def apply_and_resume(self, paths: RunPaths, item: dict[str, Any]) -> None:
        """Write the advice into the config file, then ``train --resume RUN [--force]``."""
        import asyncio

        self.busy = True
        try:
            plan = await asyncio.to_thread(recovery.apply_fix, self.config_path, paths, item)
            self.notify(plan.describe(), timeout=10)
            result = await child_commands.resume_training(self.app.services, self.config_path, plan.run_id, force=plan.force)
        finally:
            self.busy = False
        self.post_message(RunControlFinished("resume", plan.run_id, result.ok, result.output))

    def action_mark_run(self) -> None:
        if self.selected:
            self.marked = self.marked ^ {self.selected}
            self.query_one(RunList).show_rows(self.app.runs, self.marked)
            self.refresh_bindings_if_changed()

    def action_compare_runs(self) -> None:
        if len(self.marked) >= 2:
            ordered = [row.run_id for row in self.app.runs if row.run_id in self.marked]
            self.app.push_screen(CompareScreen(self.app.config.train.runs_dir, ordered))

    def action_stop_training(self) -> None:
        run_id = self.selected
        if not run_id:
            return
        question = f"Stop {run_id}?\n\nIt saves a checkpoint at the next step; resume it later with r."
        self.app.push_screen(ConfirmScreen(question, yes="Stop run", no="Keep running"),
                             callback=lambda yes: self.run_control("stop", run_id) if yes else None)

    @work(exclusive=True, exit_on_error=False, group="run-control", description="Run control")
    async def run_control(self, action: str, run_id: str | None = None) -> None:
        """Run ``carexpert train --detach`` / ``train --resume`` / ``runs stop`` and report."""
        self.busy = True
        services, config = self.app.services, self.config_argument()
        verb = {"start": "Starting a run", "quick": "Starting a quick run", "stop": f"Stopping {run_id}",
                "resume": f"Resuming {run_id}"}[action]
        self.notify(f"{verb}…", timeout=3)
        try:
            if action in ("start", "quick"):
                result = await child_commands.start_training(services, config, quick=action == "quick")
                run_id = child_commands.run_id_from_output(result)
            elif action == "resume":
                result = await child_commands.resume_training(services, config, run_id)
            else:
                result = await child_commands.stop_run(services, config, run_id)
        finally:
            self.busy = False
        self.post_message(RunControlFinished(action, run_id, result.ok, result.output))

    def worker_failed(self, worker) -> None:
        self.busy = False
        if worker.group == "time-estimate":
            self.query_one(TimeLine).show_not_measured(" (see the message)")

    @on(RunControlFinished)
    def control_finished(self, message: RunControlFinished) -> None:
        tail = "\n".join(message.output.strip().splitlines()[-4:])
        if not message.ok:
            self.notify(f"{message.action} failed:\n{tail}", severity="error", timeout=12)
            return
        if message.action in ("start", "quick", "resume") and message.run_id:
            self.notify(f"{message.run_id} started; it keeps running if you quit.")
            if message.run_id == self.selected:
                self.selected = None  # follow again from the top: a resume appends to the same log
            self.pending_select = message.run_id
            self.show_runs(self.app.runs)  # already listed (a run that went quiet changes nothing)
        else:
            self.notify(tail or f"{message.action}: done")

    def action_choose_config(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.chosen_config = path
                self.show_config_choice()

        self.app.push_screen(PathPrompt("Train with config file", str(self.config_path)), callback=chosen)
