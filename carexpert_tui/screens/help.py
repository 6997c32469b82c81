"""Every key binding of the app, grouped by where it works, with the keymap applied."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from carexpert_tui.tables import fill_table

INTRO = ("Keys work where they are listed. alt+1…alt+5 switch modes from anywhere, even while typing; "
         "the number keys 1…5 do too when no text field has focus. "
         "ctrl+p opens the command palette (every action, by name).")


def bindings_of(owner: type) -> list[Binding]:
    return [b for b in Binding.make_bindings(getattr(owner, "BINDINGS", [])) if b.description or b.id]


def help_sections(app) -> Iterable[tuple[str, list[Binding]]]:
    """(section title, bindings) for the app, each mode screen and the widgets they use."""
    from carexpert_tui.screens.base import ModeScreen
    from carexpert_tui.screens.registry import MODE_SCREENS
    from carexpert_tui.screens.registry import screen_class as class_of

    yield "Everywhere", bindings_of(type(app)) + bindings_of(ModeScreen)
    for mode in MODE_SCREENS:
        screen_class = class_of(mode)
        title = getattr(screen_class, "BINDING_GROUP_TITLE", None) or mode.title()
        yield title, bindings_of(screen_class)
        for widget_class in getattr(screen_class, "HELP_WIDGETS", ()):
            yield f"{title} · {widget_class.__name__}", bindings_of(widget_class)


class HelpScreen(ModalScreen[None]):
    """A table of every binding; escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > Vertical {
            width: 100; max-width: 100%; height: 90%;
            border: thick $primary; background: $surface; padding: 0 1;
        }
        #help-intro { color: $text-muted; margin-bottom: 1; }
        DataTable { height: 1fr; }
    }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", id="close-help")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(INTRO, id="help-intro")
            yield DataTable(zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        rows = []
        keymap = self.app.config.ui.keymap  # what the app passed to set_keymap
        for section, bindings in help_sections(self.app):
            for binding in bindings:
                if binding.id and binding.id in keymap:
                    binding = binding.with_key(keymap[binding.id])
                keys = " / ".join(self.app.get_key_display(binding.with_key(key.strip()))
                                  for key in binding.key.split(","))
                does = binding.description
                if binding.tooltip:
                    does = f"{does}: {binding.tooltip}" if does else binding.tooltip
                rows.append((section, keys, does))
        fill_table(table, ["Where", "Key", "Does"], rows)
        table.focus()
