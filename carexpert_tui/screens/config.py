"""Config mode: a form built from the schema and the raw TOML, kept in sync.

The TOML text is the single source of truth. A valid edit in the form is written into
that text with tomlkit (so the user's comments and key order survive) and the raw
view is updated; an edit in the raw view is parsed and pushed back into the form. A
value that is wrong stays in its field with the schema's message and never reaches
the text, and saving refuses while any field is wrong. Saving validates the whole
file, writes it atomically and keeps the old one as ``.bak``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static, TabbedContent, TabPane, TextArea

from carexpert.config import (
    SECTION_DOCS,
    SECTIONS,
    Config,
    ConfigError,
    Problem,
    field_specs,
    parse_config_text,
    save_user_text,
)
from carexpert.config.validate import build_config
from carexpert.errors import UserError
from carexpert.textsafe import strip_controls
from carexpert_tui.derived import derived_figures, training_examples
from carexpert_tui.screens.base import ModeScreen
from carexpert_tui.screens.confirm import ConfirmScreen
from carexpert_tui.screens.diff import DiffScreen
from carexpert_tui.screens.path_prompt import PathPrompt
from carexpert_tui.widgets.config_field import ConfigField, display_value

SYNC_DELAY_S = 0.3
ERROR_STYLE = "$error bold"  # theme variables resolve when the text is drawn, so a theme switch recolours it


def read_text(path: Path) -> str:
    """The file's text; an absent file is an empty config (all defaults)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def default_text(spec) -> str:
    """A default as it would be written in the TOML file."""
    if spec.type is bool:
        return "true" if spec.default else "false"
    return display_value(spec, spec.default) if spec.type in (list, dict) else repr(spec.default)


class ConfigScreen(ModeScreen):
    CSS_PATH = "config.tcss"
    BINDING_GROUP_TITLE = "Config"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="save-config", tooltip="Validate and save (backup kept as .bak)"),
        Binding("ctrl+r", "revert", "Revert", id="revert-config", tooltip="Reload the file from disk"),
        Binding("ctrl+g", "diff", "Diff", id="diff-config", tooltip="Unsaved changes against the file on disk"),
        Binding("ctrl+o", "open", "Open", id="open-config", tooltip="Edit another config file"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.path = Path("carexpert.toml")
        self.disk_text = ""
        self.text = ""
        self.field_problems: dict[str, str] = {}
        self.toml_error: str | None = None
        self.shapes: dict[str, Any] = {}
        self._sync_timer = None
        self.data: dict[str, Any] = {}
        self.built: set[str] = set()
        self.config_view: Config | None = None
        """The config the form shows (defaults where the file has problems); None until the file is read."""
        self.file_problems: list[Problem] = []

    def compose_body(self) -> ComposeResult:
        yield Label(id="config-status")
        with Horizontal(id="config-main"):
            with TabbedContent(id="config-tabs"):
                for section in SECTIONS:
                    with TabPane(section, id=f"tab-{section}"):
                        yield VerticalScroll(classes="form", id=f"form-{section}")  # filled when first shown
                with TabPane("TOML", id="tab-toml"):
                    yield TextArea.code_editor("", language="toml", id="raw-toml", soft_wrap=False)
            with Vertical(id="config-side"):
                yield Static(id="field-doc", classes="box")
                yield Static(id="derived", classes="box")
        yield Label(id="config-problems")

    def on_mount(self) -> None:
        self.query_one("#field-doc").border_title = "Setting"
        self.query_one("#derived").border_title = "Derived"
        self.query_one("#field-doc", Static).update("Move to a setting to read what it does.")
        self.watch(self.app, "gpus", lambda _gpus: self.refresh_derived(), init=False)
        self.load_file(self.app.config_path)
        active = self.query_one("#config-tabs", TabbedContent).active or "tab-model"
        self.call_after_refresh(self.build_section, active.removeprefix("tab-"))

    def palette_commands(self):
        return [("config: save", "Validate and save the config", self.action_save),
                ("config: revert", "Reload the config from disk", self.action_revert),
                ("config: diff", "Show unsaved changes", self.action_diff),
                ("config: open file", "Edit another config file", self.action_open),
                ("config: raw TOML", "Show the raw TOML editor", self.show_raw)]

    # --- loading and syncing -------------------------------------------------------------------

    @property
    def modified(self) -> bool:
        return self.text != self.disk_text or bool(self.field_problems)

    def fields(self) -> list[ConfigField]:
        return list(self.query(ConfigField))

    def load_file(self, path: Path) -> None:
        self.path = Path(path)
        self.disk_text = self.text = read_text(self.path)
        self.field_problems.clear()
        self.set_raw_text(self.text)
        self.text_to_form()

    def set_raw_text(self, text: str) -> None:
        with self.prevent(TextArea.Changed):
            self.query_one("#raw-toml", TextArea).load_text(text)

    def text_to_form(self) -> None:
        """Parse the TOML text and show it in the form, with every problem by its field."""
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            self.toml_error = f"malformed TOML: {exc}"
            self.show_status()
            return
        except RecursionError:  # pasted text nested thousands deep: say so, keep the text as typed
            self.toml_error = "malformed TOML: arrays or tables nested too deeply (thousands of levels)"
            self.show_status()
            return
        self.toml_error = None
        config, problems = build_config(data, self.text)
        self.config_view, self.data, self.file_problems = config, data, problems
        for field in self.fields():
            field.show_value(self.shown_value(field.spec))
            self.field_problems.pop(field.key, None)
            field.show_problem(self.problem_for(field.key))
        self.show_status()
        self.refresh_derived()

    def shown_value(self, spec) -> Any:
        """What the field shows: the file's value as written (even a wrong one), else the default."""
        body = self.data.get(spec.section)
        if isinstance(body, dict) and spec.name in body:
            return body[spec.name]
        assert self.config_view is not None  # fields are built only once the file has been read
        return getattr(getattr(self.config_view, spec.section), spec.name)

    def problem_for(self, key: str) -> str | None:
        return next((p.message for p in self.file_problems if p.key == key), None)

    @on(TabbedContent.TabActivated, "#config-tabs")
    async def tab_shown(self, event: TabbedContent.TabActivated) -> None:
        await self.build_section((event.pane.id or "").removeprefix("tab-"))

    async def build_section(self, section: str) -> None:
        """Build a section's fields the first time its tab is shown (60 fields at once are slow to mount)."""
        if section not in SECTIONS or section in self.built or self.config_view is None:
            return
        self.built.add(section)
        fields = [ConfigField(spec, self.shown_value(spec), self.problem_for(spec.key))
                  for spec in field_specs() if spec.section == section]
        await self.query_one(f"#form-{section}").mount(Label(SECTION_DOCS.get(section, ""), classes="section-doc"),
                                                       *fields)

    @on(ConfigField.Edited)
    def form_to_text(self, event: ConfigField.Edited) -> None:
        key = event.field.key
        if event.problem is not None:
            self.field_problems[key] = event.problem
            self.show_status()
            return
        self.field_problems.pop(key, None)
        if self.toml_error:
            self.notify("Fix the TOML in the raw view first; form edits wait until it parses.", severity="warning")
            return
        document = tomlkit.parse(self.text)
        section = event.field.spec.section
        if section not in document:
            document[section] = tomlkit.table()
        document[section][event.field.spec.name] = event.value
        self.text = tomlkit.dumps(document)
        self.set_raw_text(self.text)
        config, problems = build_config(tomllib.loads(self.text), self.text)
        self.config_view, self.file_problems = config, problems
        for field in self.fields():
            if field.key not in self.field_problems:
                field.show_problem(next((p.message for p in problems if p.key == field.key), None))
        self.show_status()
        self.refresh_derived()

    @on(TextArea.Changed, "#raw-toml")
    def raw_edited(self) -> None:
        if self._sync_timer is not None:
            self._sync_timer.stop()
        self._sync_timer = self.set_timer(SYNC_DELAY_S, self.raw_to_form)

    def raw_to_form(self) -> None:
        self.text = self.query_one("#raw-toml", TextArea).text
        self.text_to_form()

    # --- what the user sees beside the form ----------------------------------------------------

    def show_status(self) -> None:
        state = "modified" if self.modified else "saved"
        if not self.path.exists():
            state = "new file" if self.text else "not on disk (defaults)"
        count = len(self.field_problems) + len([p for p in self.file_problems
                                                 if p.key not in self.field_problems])
        parts: list[str | tuple[str, str]] = [(str(self.path), "bold"), f" · {state}"]
        if self.toml_error:
            parts.append((" · TOML does not parse", ERROR_STYLE))
        elif count:
            parts.append((f" · {count} problem{'s' * (count != 1)}", ERROR_STYLE))
        self.query_one("#config-status", Label).update(Content.assemble(*parts))
        lines = []
        if self.toml_error:
            lines.append(self.toml_error)
        for problem in self.file_problems:
            if problem.key not in self.field_problems:
                lines.append(problem.render(self.path.name))
        for key, message in self.field_problems.items():
            lines.append(f"{key}: {message}")
        problems = self.query_one("#config-problems", Label)
        shown = "\n".join(lines[:3]) + (f"\n… {len(lines) - 3} more" if len(lines) > 3 else "")
        problems.update(Text(strip_controls(shown)))  # key names come from the file: text, never markup
        problems.display = bool(lines)

    def on_descendant_focus(self, event) -> None:
        field = next((node for node in event.widget.ancestors_with_self if isinstance(node, ConfigField)), None)
        if field is None:
            return
        spec = field.spec
        doc = Text.assemble((spec.key, "bold"), "\n", spec.doc, "\n\n", ("Allowed: ", "italic"),
                            spec.allowed(), "\n", ("Default: ", "italic"), default_text(spec))
        self.query_one("#field-doc", Static).update(doc)

    def refresh_derived(self) -> None:
        config = self.config_view
        if config is None:
            return
        base_model = config.model.base_model
        if base_model not in self.shapes:
            self.shapes[base_model] = None
            self.read_model_shape(base_model)
        gpus = self.app.gpus
        figures = derived_figures(config, n_gpus=len(gpus), n_train=training_examples(config),
                                  shape=self.shapes.get(base_model),
                                  gpu_name=gpus[0].get("name") if gpus else None,
                                  gpu_total_bytes=gpus[0].get("mem_total") if gpus else None)
        parts: list[tuple[str, str]] = []
        for figure in figures:
            parts += [(f"{figure.label:<13}", "italic"), (figure.value + "\n", ERROR_STYLE if figure.warning else "")]
        self.query_one("#derived", Static).update(Content.assemble(*parts))

    @work(exit_on_error=False, group="model-shape", description="Reading the model's shape")
    async def read_model_shape(self, base_model: str) -> None:
        self.shapes[base_model] = await self.app.services.model_shape(base_model)
        self.refresh_derived()

    # --- actions -----------------------------------------------------------------------------------

    def show_raw(self) -> None:
        self.query_one("#config-tabs", TabbedContent).active = "tab-toml"
        self.query_one("#raw-toml", TextArea).focus()

    def action_save(self) -> None:
        if self._sync_timer is not None:
            self._sync_timer.stop()
            self.text = self.query_one("#raw-toml", TextArea).text
        if self.field_problems:
            keys = ", ".join(self.field_problems)
            self.notify(f"Not saved: fix {keys} first.", severity="error")
            return
        try:
            backup = save_user_text(self.path, self.text)
            config = parse_config_text(self.text, str(self.path))
        except ConfigError as error:
            self.text_to_form()
            self.notify(f"Not saved: {error.message}\n" + "\n".join(error.details[:4]), severity="error", timeout=10)
            return
        except UserError as error:
            self.notify(f"Not saved: {error.render()}", severity="error", timeout=10)
            return
        except OSError as error:
            self.notify(f"Not saved: cannot write {self.path} ({error.strerror})", severity="error", timeout=10)
            return
        self.disk_text = self.text
        self.app.adopt_config(config, self.path)
        kept = f" (previous version kept as {backup.name})" if backup else ""
        self.notify(f"Saved {self.path}{kept}.")
        self.show_status()

    def _unless_modified(self, then, question: str) -> None:
        if not self.modified:
            then()
            return
        self.app.push_screen(ConfirmScreen(question, yes="Discard", no="Keep editing"),
                             callback=lambda yes: then() if yes else None)

    def action_revert(self) -> None:
        self._unless_modified(lambda: (self.load_file(self.path), self.notify(f"Reloaded {self.path}.")),
                              "Discard the unsaved changes and reload the file from disk?")

    def action_diff(self) -> None:
        self.app.push_screen(DiffScreen(self.disk_text, self.text, self.path.name))

    def action_open(self) -> None:
        def opened(path: Path | None) -> None:
            if path is None:
                return
            self.load_file(path)
            try:
                self.app.adopt_config(parse_config_text(self.text, str(path)), path)
            except UserError:
                self.notify(f"Opened {path}; it has problems, so the app keeps the previous config until "
                            "it is fixed and saved.", severity="warning")

        self._unless_modified(lambda: self.app.push_screen(PathPrompt("Open config file", str(self.path)),
                                                           callback=opened),
                              "Discard the unsaved changes and open another file?")
