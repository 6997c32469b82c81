"""Ask for a file path, suggesting the TOML files in the current folder."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label


def toml_files(folder: Path, limit: int = 200) -> list[str]:
    found = sorted(str(p) for p in folder.glob("*.toml"))
    found += sorted(str(p) for p in folder.glob("*/*.toml"))
    return found[:limit]


class PathPrompt(ModalScreen[Path | None]):
    """Dismisses with the typed path (enter) or None (escape)."""

    DEFAULT_CSS = """
    PathPrompt {
        align: center middle;
        & > Vertical {
            width: 72; max-width: 100%; height: auto;
            border: thick $primary; background: $surface; padding: 1 2;
        }
        #prompt-hint { color: $text-muted; }
        #prompt-problem { color: $error; }
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel-prompt")]

    def __init__(self, title: str, start: str = "", *, must_exist: bool = True):
        super().__init__()
        self.title_text = title
        self.start = start
        self.must_exist = must_exist

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(self.start, suggester=SuggestFromList(toml_files(Path.cwd()), case_sensitive=True),
                        placeholder="path/to/file.toml")
            yield Label("enter opens · right arrow takes the suggestion · escape cancels", id="prompt-hint")
            yield Label("", id="prompt-problem")

    @on(Input.Submitted)
    def chosen(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if not event.value.strip():
            return
        if self.must_exist and not path.is_file():
            self.query_one("#prompt-problem", Label).update(f"{path}: no such file")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
