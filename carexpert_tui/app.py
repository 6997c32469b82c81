"""The carexpert terminal app: five modes over the headless core.

The app owns the state every screen shares, as reactives the screens watch: the
config (and its file), the runs found in the runs folder, the latest GPU and host
reading, and the run the user is looking at. Two long-lived thread workers keep the
last two fresh. Mode screens are imported when first opened (``screens.registry``). Nothing here imports torch: the core's heavy parts are reached through
``Services`` from workers or child processes, so the first frame comes fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, InvalidThemeError
from textual.binding import Binding
from textual.reactive import var
from textual.worker import Worker, WorkerState, get_current_worker

from carexpert.config import Config, ConfigError, default_config_path, load_or_default, update_user_file
from carexpert.errors import UserError
from carexpert.notify import notification_sequence, run_event_message
from carexpert.textsafe import strip_controls
from carexpert_tui.commands import CarExpertCommands
from carexpert_tui.formatting import describe_error
from carexpert_tui.messages import GpuSampled, RunsListed
from carexpert_tui.run_rows import RunRow, scan_runs
from carexpert_tui.screens.confirm import ConfirmScreen
from carexpert_tui.screens.help import HelpScreen
from carexpert_tui.screens.registry import MODE_SCREENS, mode_bindings, screen_factory
from carexpert_tui.services import Services
from carexpert_tui.terminal_keys import deliver_alt_digits
from carexpert_tui.themes import APP_VARIABLES, BRAND_THEME, BRAND_THEME_NAME, load_themes


class CarExpertApp(App):
    """Check the machine, edit the config, train, evaluate and chat, by keyboard."""

    TITLE = "carexpert"
    CSS_PATH = "app.tcss"
    MODES = {mode: screen_factory(mode) for mode in MODE_SCREENS}
    DEFAULT_MODE = "system"
    COMMANDS = App.COMMANDS | {CarExpertCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDING_GROUP_TITLE = "Everywhere"
    BINDINGS = [
        *mode_bindings(),
        Binding("question_mark,f1", "show_help", "Help", id="help", tooltip="Every key binding"),
        Binding("f2", "show_knowledge", "Knowledge", id="knowledge",
                tooltip="Search the knowledge store: the passages the expert reads"),
        Binding("ctrl+p", "command_palette", "Palette", id="palette", show=False,
                tooltip="Every command by name: modes, themes, screen actions"),
        Binding("ctrl+q", "quit", "Quit", id="quit", show=False,
                tooltip="Quit (a running training goes on)"),
    ]

    config: var[Config] = var(Config, always_update=True)
    config_path: var[Path] = var(Path("carexpert.toml"))
    runs: var[tuple[RunRow, ...]] = var(tuple)
    gpus: var[list[dict[str, Any]]] = var(list, always_update=True)
    host: var[dict[str, Any]] = var(dict)
    current_run: var[str | None] = var(None)

    def __init__(self, config_path: str | os.PathLike | None = None, *, services: Services | None = None,
                 mode: str | None = None, themes_folder: Path | None = None, freeze_gc: bool = False):
        super().__init__()
        self.freeze_gc = freeze_gc  # the process is this app (carexpert-tui): see ModeScreen.freeze_long_lived_objects
        deliver_alt_digits()  # alt+number switches modes from classic terminals too
        self.services = services or Services()
        self._start_mode = mode or self.DEFAULT_MODE
        self._startup_notes: list[tuple[str, str]] = []
        self.config_path = Path(config_path) if config_path else default_config_path()
        self.config = self._load_start_config(config_path)
        self._register_themes(themes_folder)
        self.set_keymap(self.config.ui.keymap)

    # --- start-up -------------------------------------------------------------------------

    def _load_start_config(self, explicit: str | os.PathLike | None) -> Config:
        try:
            return load_or_default(self.config_path if explicit or self.config_path.exists() else None)
        except ConfigError as error:
            details = "\n".join(error.details[:4])
            self._startup_notes.append((f"{error.message} — using defaults until fixed "
                                        f"(Config screen, key 2):\n{details}", "error"))
        except UserError as error:
            self._startup_notes.append((f"{error.render()}\nUsing the built-in defaults.", "error"))
        return Config()

    def _register_themes(self, folder: Path | None) -> None:
        self.register_theme(BRAND_THEME)
        themes, problems = load_themes(folder)
        for theme in themes:
            self.register_theme(theme)
        if problems:
            self._startup_notes.append(("Theme files skipped:\n" + "\n".join(p.render() for p in problems), "error"))
        wanted = self.config.ui.theme
        try:
            self.theme = wanted
        except InvalidThemeError:
            self._startup_notes.append((f"Theme {wanted!r} not found in themes/; using {BRAND_THEME_NAME}.", "error"))
            self.theme = BRAND_THEME_NAME

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Defaults for the app's own variables, from the current theme's colours."""
        theme = self.current_theme
        return {name: getattr(theme, source) or theme.primary for name, source in APP_VARIABLES.items()}

    def on_mount(self) -> None:
        self.switch_mode(self._start_mode)
        for text, severity in self._startup_notes:
            self.notify(text, severity=severity, timeout=12)
        self.theme_changed_signal.subscribe(self, self.remember_theme)
        self.poll_gpus()
        self.poll_runs()

    # --- shared state, kept fresh by workers ---------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="gpu-probe", description="Polling GPUs")
    def poll_gpus(self) -> None:
        """Read NVML and the host every few seconds until the app closes."""
        worker = get_current_worker()
        gpu_available = True
        while not worker.is_cancelled:
            gpus: list[dict[str, Any]] = []
            if gpu_available:
                try:
                    gpus = self.services.gpu_snapshot()
                except Exception as exc:  # noqa: BLE001 - no NVML, no driver, or the core part missing: say so once
                    gpu_available = False
                    self.call_from_thread(self.notify, f"GPU readings unavailable: {exc}", severity="warning")
            try:
                host = self.services.host_snapshot()
            except Exception:  # noqa: BLE001 - host readings are optional: the panel shows none rather than stop
                host = {}
            self.post_message(GpuSampled(gpus, host))
            worker.cancelled_event.wait(self.services.gpu_poll_seconds)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-scan", description="Scanning runs")
    def poll_runs(self) -> None:
        """List the runs folder every second: runs started anywhere show up and go live."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                rows = scan_runs(self.config.train.runs_dir)
            except OSError:
                rows = []
            self.post_message(RunsListed(rows))
            worker.cancelled_event.wait(self.services.runs_poll_seconds)

    @on(GpuSampled)
    def keep_gpu_sample(self, message: GpuSampled) -> None:
        self.gpus = message.gpus
        self.host = message.host

    @on(RunsListed)
    def keep_runs(self, message: RunsListed) -> None:
        rows = tuple(message.rows)
        if rows != self.runs:
            self.announce_endings(self.runs, rows)
            self.runs = rows
        if self.current_run is None and rows:
            live = [row for row in rows if row.live]
            self.current_run = (live or list(rows))[0].run_id

    def announce_endings(self, before: tuple[RunRow, ...], after: tuple[RunRow, ...]) -> None:
        """A run that ended or stalled: a toast, plus the terminal notification the config asks for."""
        was_live = {row.run_id for row in before if row.live}
        was_stalled = {row.run_id for row in before if row.stalled}
        for row in after:
            if row.stalled and row.run_id not in was_stalled:
                self.announce(row.run_id, "stalled", "no training step for a while; see its log", "warning")
            if row.run_id not in was_live or row.live:
                continue
            self.announce(row.run_id, row.state, row.error or "",
                          "error" if row.state in ("failed", "dead") else "information")

    def announce(self, run_id: str, state: str, detail: str, severity: str) -> None:
        found = run_event_message(run_id, state, detail)
        if found is None:
            return
        title, body = found
        self.notify(body, title=title, severity=severity)
        if self.config.ui.bell:
            self.bell()
        sequence = notification_sequence(title, body, desktop=self.config.ui.notifications, bell=False)
        if sequence and self._driver is not None and not self.is_headless:
            # Desktop notifications are OSC escape sequences; Textual has no public way to write raw
            # bytes to the terminal (App.bell does the same for BEL), so this is the one private use.
            self._driver.write(sequence)

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Every toast shows its text as written: run errors, file names and key names come from disk,
        so they are never read as markup and never carry terminal controls (``markup`` is ignored)."""
        super().notify(strip_controls(str(message)), title=strip_controls(str(title)), severity=severity,
                       timeout=timeout, markup=False)

    def live_runs(self) -> list[RunRow]:
        return [row for row in self.runs if row.live]

    @on(Worker.StateChanged)
    def report_worker_error(self, event: Worker.StateChanged) -> None:
        """One place where a failed worker becomes a message the user can act on."""
        if event.state is WorkerState.ERROR:
            self.notify(f"{event.worker.description or event.worker.name} failed:\n{describe_error(event.worker.error)}",
                        severity="error", timeout=10)

    # --- config and theme -----------------------------------------------------------------

    def adopt_config(self, config: Config, path: Path) -> None:
        """A screen saved or opened a config: every screen sees the new one."""
        self.config_path = path
        self.config = config
        self.set_keymap(config.ui.keymap)

    def remember_theme(self, theme) -> None:
        if theme.name != self.config.ui.theme:
            self.config.ui.theme = theme.name
            self.save_theme_choice(theme.name)

    @work(thread=True, exit_on_error=False, group="theme-save", description="Saving the theme choice")
    def save_theme_choice(self, name: str) -> None:
        try:
            update_user_file(self.config_path, {"ui.theme": name})
        except UserError as error:
            self.call_from_thread(self.notify, f"Theme not saved to {self.config_path}:\n{error.render()}",
                                  severity="warning")

    # --- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "switch_mode" and self.screen.is_modal:
            return False  # a dialog is open: answer it first (alt+number is a priority key)
        if action == "switch_mode" and parameters and self.current_mode == parameters[0]:
            return None
        return True

    def action_show_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_show_knowledge(self) -> None:
        from carexpert_tui.screens.knowledge import KnowledgeScreen

        if not isinstance(self.screen, KnowledgeScreen):
            self.push_screen(KnowledgeScreen())

    async def action_quit(self) -> None:
        """Quit; when a run is live, ask first and say that it keeps going."""
        live = self.live_runs()
        if not live:
            self.exit()
            return
        names = ", ".join(row.run_id for row in live[:3])
        question = (f"Training is running ({names}).\n\nIt runs in its own process and keeps going "
                    "after you quit; open carexpert-tui again to watch it.\n\nQuit the app?")

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.exit()

        self.push_screen(ConfirmScreen(question, yes="Quit", no="Stay"), callback=answered)
