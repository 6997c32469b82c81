"""Search the knowledge store from the app: what the expert can read, found the way chat finds it.

The same retrieval the model's prompts use (``carexpert.retrieval``), so a search here shows
exactly which passages a question would put in front of the model, best first, and the full
text of the highlighted one (a vehicle's whole row of figures). Opening the store can take a
moment the first time (it is built from the tables), so every search runs in a thread worker.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static
from textual.worker import Worker, WorkerState

from carexpert_tui.tables import fill_table

HITS = 8
HIT_COLUMNS = ("#", "kind", "title", "score", "found by")


class KnowledgeScreen(ModalScreen[None]):
    """Type a question or a name; enter searches; up/down pick a hit; escape closes."""

    DEFAULT_CSS = """
    KnowledgeScreen {
        align: center middle;
        & > Vertical {
            width: 110; max-width: 100%; height: 95%;
            border: thick $primary; background: $surface; padding: 0 1;
        }
        #kb-status { color: $text-muted; height: 1; }
        #kb-hits { height: 9; }
        #kb-detail { height: 1fr; border-top: solid $panel; padding-top: 0; overflow-y: auto; }
        #kb-detail.-empty { color: $text-muted; }
    }
    """
    BINDINGS = [Binding("escape", "dismiss", "Close", id="close-knowledge"),
                Binding("down", "focus_hits", "Hits", id="knowledge-hits", show=False)]

    def __init__(self, query: str = ""):
        super().__init__()
        self.initial_query = query
        self.hits: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Knowledge store: what the expert reads (the same retrieval as chat and training)")
            yield Input(self.initial_query, placeholder="e.g. 2024 camry le horsepower, or turbo lag",
                        id="kb-query")
            yield Static("", id="kb-status")
            table: DataTable = DataTable(id="kb-hits", cursor_type="row", zebra_stripes=True)
            yield table
            yield Static("Search for a vehicle, a concept or a maintenance item.", id="kb-detail", classes="-empty")

    def on_mount(self) -> None:
        fill_table(self.query_one("#kb-hits", DataTable), HIT_COLUMNS, [])
        if self.initial_query.strip():
            self.search(self.initial_query)

    @on(Input.Submitted, "#kb-query")
    def submit_query(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.search(event.value)

    def search(self, query: str) -> None:
        self.query_one("#kb-status", Static).update(Text(f"Searching for {query.strip()!r} …"))
        self.run_search(query.strip())

    @work(thread=True, exclusive=True, exit_on_error=False, group="kb-search", description="Searching the store")
    def run_search(self, query: str) -> list[dict[str, Any]]:
        return self.app.services.kb_search(self.app.config, query, HITS)

    @on(Worker.StateChanged)
    def show_results(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "kb-search":
            return
        status = self.query_one("#kb-status", Static)
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            status.update(Text(f"Search failed: {getattr(error, 'message', None) or error}"))
            return
        if event.state != WorkerState.SUCCESS:
            return
        self.hits = list(event.worker.result or [])
        sanitize = self.app.services.sanitize
        fill_table(self.query_one("#kb-hits", DataTable), HIT_COLUMNS,
                   [(str(rank), Text(hit["kind"]), Text(sanitize(hit["title"])), f"{hit['score']:.2f}", Text(hit["how"]))
                    for rank, hit in enumerate(self.hits, start=1)],
                   keys=[str(index) for index in range(len(self.hits))])
        status.update(f"{len(self.hits)} passage(s), best first" if self.hits else "Nothing found.")
        self.show_detail(0)

    @on(DataTable.RowHighlighted, "#kb-hits")
    def highlight(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.show_detail(int(event.row_key.value))

    def show_detail(self, index: int) -> None:
        detail = self.query_one("#kb-detail", Static)
        if not 0 <= index < len(self.hits):
            detail.update("")
            return
        hit = self.hits[index]
        detail.set_class(False, "-empty")
        sanitize = self.app.services.sanitize
        detail.update(Text(f"{sanitize(hit['id'])} · {hit['kind']}\n\n{sanitize(hit['text'])}"))

    def action_focus_hits(self) -> None:
        self.query_one("#kb-hits", DataTable).focus()
