"""The unsaved changes, as a unified diff against the file on disk."""

from __future__ import annotations

import difflib

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static


def unified_diff(before: str, after: str, name: str) -> str:
    """``diff -u`` of two texts; empty when they are the same."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"{name} (on disk)", tofile=f"{name} (edited)"))


# Which theme colour each kind of diff line takes (the prefix decides, as in ``diff -u``).
LINE_STYLES = (("+++", "$text-muted"), ("---", "$text-muted"), ("@@", "$accent"), ("+", "$success"), ("-", "$error"))


def coloured_diff(diff: str) -> Content:
    """The diff in the theme's colours (resolved when drawn): additions in success, removals in error."""
    return Content.assemble(*((line, next((style for prefix, style in LINE_STYLES if line.startswith(prefix)), ""))
                              for line in diff.splitlines(keepends=True)))


class DiffScreen(ModalScreen[None]):
    """Shows the diff; escape or q closes it."""

    DEFAULT_CSS = """
    DiffScreen {
        align: center middle;
        & > Vertical {
            width: 110; max-width: 100%; height: 90%;
            border: thick $primary; background: $surface; padding: 0 1;
        }
        #diff-title { color: $text-muted; }
        VerticalScroll { height: 1fr; }
    }
    """
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="close-diff")]

    def __init__(self, before: str, after: str, name: str):
        super().__init__()
        self.diff = unified_diff(before, after, name)
        self.file_name = name

    def compose(self) -> ComposeResult:
        with Vertical():
            if self.diff:
                yield Label(f"Unsaved changes to {self.file_name} — escape closes", id="diff-title")
            else:
                yield Label(f"No changes: the editor matches {self.file_name} on disk", id="diff-title")
            with VerticalScroll():
                yield Static(coloured_diff(self.diff), id="diff-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
