"""Eval mode: how much better is the tuned model? Up to four sides (base / tuned, closed-book /
with retrieval), by category as a chart and a table, and item by item.

The chart draws one bar per side for every category (``m`` cycles the metric). The table and
the items compare two sides: the headline tuned side (tuned + retrieval when evaluated) and the
base side beside it (``carexpert.evaluation.sides``).

Results are the files ``carexpert eval`` writes (``runs/<id>/eval/<time>/``), read with the
core's ``load_results`` in a worker. A new evaluation is ``carexpert eval RUN`` started as
its own process (it outlives the app, like training); its progress is read back from its
log, and the new result appears in the list when it is written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Label, ProgressBar, Select, Static, TabbedContent, TabPane

from carexpert.evaluation.sides import SIDES, baseline_side, headline_side
from carexpert_tui import child_commands
from carexpert_tui.formatting import percent
from carexpert_tui.messages import EvalFinished, EvalProgressed
from carexpert_tui.run_rows import RunRow
from carexpert_tui.screens.base import ModeScreen
from carexpert_tui.tables import fill_table
from carexpert_tui.widgets.answer_compare import AnswerCompare, verdict_text
from carexpert_tui.widgets.side_chart import SideChart

VERDICTS = ("correct", "partial", "wrong", "refused", "empty", "unscored")
CHANGES = ("improved", "regressed")
ALL = "all"
# (summary key, chart title) the chart cycles through with m
CHART_METRICS = (("score", "score"), ("correct_rate", "correct"), ("numeric_accuracy", "numbers"),
                 ("concept_coverage", "concepts"), ("hallucination_rate", "hallucinated"))
CATEGORY_COLUMNS = ("category", "n", "score b→t", "correct b→t", "numeric b→t", "clean stop b→t")
STACK_BELOW = 120  # narrower than this, the chart sits above the table instead of beside it
Pair = tuple[str | None, str | None]  # (base side, tuned side) compared in the table and the items


def pair_sides(summary: dict[str, Any]) -> Pair:
    """The sides the table and the items compare: the headline tuned side and the base side beside it."""
    sides = summary.get("sides") or []
    tuned = headline_side(sides)
    return baseline_side(sides, tuned), tuned


def score_of(item: dict[str, Any], side: str) -> float | None:
    value = (item.get(side) or {}).get("score")
    return value if isinstance(value, (int, float)) else None


def item_matches(item: dict[str, Any], category: str, verdict: str, search: str,
                 sides: Pair = ("base_closed", "tuned_closed")) -> bool:
    """Whether an item passes the category, verdict (of the tuned answer, or a change) and text filters."""
    base_side, tuned_side = sides
    if category != ALL and item.get("category") != category:
        return False
    if verdict in CHANGES:
        base, tuned = (score_of(item, base_side) if base_side else None), score_of(item, tuned_side or "")
        if base is None or tuned is None or (tuned > base) != (verdict == "improved") or tuned == base:
            return False
    elif verdict != ALL and (item.get(tuned_side or "") or {}).get("verdict") != verdict:
        return False
    if search:
        keys = ("id", "question", *(f"{side}_answer" for side in SIDES))
        haystack = " ".join(str(item.get(k) or "") for k in keys)
        return search.lower() in haystack.lower()
    return True


def two_places(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def three_places(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def pair(summary_part: dict[str, Any] | None, key: str = "", fmt=two_places,
         sides: tuple[str | None, str | None] = ("base", "tuned")) -> str:
    """"base → tuned" for one figure of a summary section (``sides``: the two keys to read)."""
    part = summary_part or {}
    base_key, tuned_key = sides
    base = part.get(base_key) if not key else (part.get(base_key) or {}).get(key)
    tuned = part.get(tuned_key) if not key else (part.get(tuned_key) or {}).get(key)
    return f"{fmt(base)} → {fmt(tuned)}"


class EvalScreen(ModeScreen):
    CSS_PATH = "evaluate.tcss"
    BINDING_GROUP_TITLE = "Eval"
    BINDINGS = [
        Binding("n", "new_evaluation", "New eval", id="new-evaluation",
                tooltip="Evaluate the selected run again (in the background)"),
        Binding("slash", "search", "Search", id="search-items", tooltip="Search the items"),
        Binding("i", "show_items", "Items", id="show-items", show=False, tooltip="Show the items tab"),
        Binding("m", "next_metric", "Metric", id="chart-metric", show=False,
                tooltip="Chart the next metric (score, correct, numbers, concepts, hallucinated)"),
    ]

    evaluating: reactive[str | None] = reactive(None, bindings=True)

    def __init__(self) -> None:
        super().__init__()
        self.results = None
        self.sides: Pair = (None, None)
        self.chart_metric = 0
        self.visible_items: list[dict[str, Any]] = []
        self._options: list[tuple[str, str]] = []
        # (run, results it had before) of a finished evaluation whose new result is shown once listed
        self.newest_of: tuple[str, set[str]] | None = None
        self.known_results: set[str] = set()
        """The results the run being evaluated had when the evaluation started ("run/name")."""

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="eval-top"):
            yield Select([], prompt="evaluation results", id="result-choice", compact=True)
        with Horizontal(id="eval-progress-row"):
            yield Label("", id="eval-progress-text")
            yield ProgressBar(total=None, show_eta=False, id="eval-progress")
        with TabbedContent(id="eval-tabs"):
            with TabPane("Summary", id="tab-summary"):
                yield Static("", id="eval-overview")
                with Horizontal(id="summary-split"):
                    yield SideChart(id="side-chart")
                    yield DataTable(id="category-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Items", id="tab-items"):
                with Horizontal(id="item-filters"):
                    yield Select([(ALL, ALL)], value=ALL, allow_blank=False, id="filter-category", compact=True)
                    yield Select([(v, v) for v in (ALL, *VERDICTS, *CHANGES)], value=ALL, allow_blank=False,
                                 id="filter-verdict", compact=True)
                    yield Input(placeholder="search (/)", id="filter-search", compact=True)
                with Vertical(id="items-split"):
                    yield DataTable(id="item-table", cursor_type="row", zebra_stripes=True)
                    yield AnswerCompare(id="item-detail")

    def on_mount(self) -> None:
        self.query_one("#eval-progress-row").display = False
        self.query_one(AnswerCompare).sanitize = self.app.services.sanitize
        fill_table(self.query_one("#category-table", DataTable), CATEGORY_COLUMNS, [])
        fill_table(self.query_one("#item-table", DataTable), self.item_columns(), [])
        self.watch(self.app, "runs", self.list_results)

    def on_resize(self) -> None:
        self.query_one("#summary-split").set_class(self.size.width < STACK_BELOW, "-stacked")

    def item_columns(self) -> list[tuple[str, str]]:
        """The item table's columns: id, the two compared sides' verdicts, the question."""
        base_side, tuned_side = self.sides
        return [("id", "id"), (SIDES[base_side].short if base_side else "base", "base"),
                (SIDES[tuned_side].short if tuned_side else "tuned", "tuned"), ("question", "question")]

    def palette_commands(self):
        return [("eval: new evaluation", "Evaluate the selected run in the background", self.action_new_evaluation),
                ("eval: search items", "Search questions and answers", self.action_search),
                ("eval: chart next metric", "Score, correct, numbers, concepts, hallucinated",
                 self.action_next_metric)]

    # --- choosing results ----------------------------------------------------------------------

    def list_results(self, rows: tuple[RunRow, ...]) -> None:
        """Offer every result of every run; keep the choice, or move to a just-finished evaluation."""
        choice = self.query_one("#result-choice", Select)
        options = [(f"{row.run_id} · {name}", f"{row.run_id}/{name}") for row in rows for name in row.eval_results]
        values = [value for _, value in options]
        current = choice.value
        if values != [value for _, value in self._options]:
            self._options = options
            with self.prevent(Select.Changed):
                choice.set_options(options)
                if current in values:
                    choice.value = current
        wanted = None
        if self.newest_of is not None:
            run_id, known = self.newest_of
            wanted = next((v for v in values if v.split("/")[0] == run_id and v not in known), None)
            if wanted is not None:  # else the new result is not listed yet: the next scan brings it
                self.newest_of = None
        elif current not in values:
            wanted = self.preferred_result(options)
        if wanted is not None:
            choice.value = wanted
        if not options:
            self.query_one("#eval-overview", Static).update(
                "No evaluation results yet. Train a run, then press n to evaluate it (or: carexpert eval RUN).")

    def preferred_result(self, options: list[tuple[str, str]]) -> str | None:
        """The newest result of the app's current run, else the newest of any run."""
        values = [value for _, value in options]
        mine = [v for v in values if v.split("/")[0] == self.app.current_run]
        return (mine or values or [None])[0]

    @on(Select.Changed, "#result-choice")
    def result_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            run_id, name = event.value.split("/", 1)
            row = next((r for r in self.app.runs if r.run_id == run_id), None)
            if row is not None:
                self.load_result(row, name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="eval-load", description="Reading results")
    def load_result(self, row: RunRow, name: str) -> None:
        from carexpert.evaluation.results import find_result, load_results

        results = load_results(find_result(row.paths, name))
        self.app.call_from_thread(self.show_results, results)

    def show_results(self, results) -> None:
        self.results = results
        summary = results.summary
        self.sides = sides = pair_sides(summary)
        overall = summary.get("overall") or {}
        _base_side, tuned_side = sides
        compared = " → ".join(SIDES[s].short for s in sides if s)
        overview = Text()
        overview.append(f"{summary.get('run_id', '')} · {results.name} · {summary.get('n_items', '?')} items · "
                        f"model {summary.get('model', '?')}\n", style="bold")
        overview.append(f"{compared}: score {pair(overall, 'score', sides=sides)}   "
                        f"correct {pair(overall, 'correct_rate', percent, sides=sides)}   "
                        f"val loss {pair(summary.get('val_loss'), fmt=three_places)}")
        headline = overall.get(tuned_side or "") or {}
        if headline.get("hallucination_rate") is not None or headline.get("guard_refusal_rate"):
            overview.append(f"\n{SIDES[tuned_side].short}: hallucinated {percent(headline.get('hallucination_rate'))}"
                            f"   false refusals {percent(headline.get('false_refusal_rate'))}"
                            f"   guard {percent(headline.get('guard_refusal_rate'))}")
        self.query_one("#eval-overview", Static).update(overview)
        fill_table(self.query_one("#category-table", DataTable), CATEGORY_COLUMNS,
                   [(category, str(part.get("n", "")), pair(part, "score", sides=sides),
                     pair(part, "correct_rate", percent, sides=sides), pair(part, "numeric_accuracy", sides=sides),
                     pair(part, "clean_stop_rate", percent, sides=sides))
                    for category, part in (summary.get("categories") or {}).items()])
        self.draw_chart()
        categories = sorted({item.get("category", "") for item in results.items})
        choice = self.query_one("#filter-category", Select)
        with self.prevent(Select.Changed):
            choice.set_options([(ALL, ALL)] + [(c, c) for c in categories])
            choice.value = ALL
        self.filter_items()

    # --- items --------------------------------------------------------------------------------------

    @on(Select.Changed, "#filter-category")
    @on(Select.Changed, "#filter-verdict")
    @on(Input.Changed, "#filter-search")
    def filter_items(self) -> None:
        if self.results is None:
            return
        category = self.query_one("#filter-category", Select).value
        verdict = self.query_one("#filter-verdict", Select).value
        search = self.query_one("#filter-search", Input).value.strip()
        self.visible_items = [item for item in self.results.items
                              if item_matches(item, str(category), str(verdict), search, self.sides)]
        variables = self.app.theme_variables
        base_side, tuned_side = self.sides
        fill_table(self.query_one("#item-table", DataTable), self.item_columns(),
                   [(item.get("id", ""), verdict_text(item.get(base_side) if base_side else None, variables),
                     verdict_text(item.get(tuned_side or ""), variables),
                     self.app.services.sanitize(item.get("question", ""))) for item in self.visible_items],
                   keys=[str(index) for index in range(len(self.visible_items))])
        self.query_one(AnswerCompare).show_item(self.visible_items[0] if self.visible_items else None, self.sides)
        tabs = self.query_one("#eval-tabs", TabbedContent)
        tabs.get_tab("tab-items").label = f"Items {len(self.visible_items)}/{len(self.results.items)}"

    @on(DataTable.RowHighlighted, "#item-table")
    def item_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.visible_items):
            self.query_one(AnswerCompare).show_item(self.visible_items[event.cursor_row], self.sides)

    # --- the chart ---------------------------------------------------------------------------------

    def draw_chart(self) -> None:
        key, label = CHART_METRICS[self.chart_metric]
        self.query_one(SideChart).show(self.results.summary if self.results else None, key, label)

    def action_next_metric(self) -> None:
        self.chart_metric = (self.chart_metric + 1) % len(CHART_METRICS)
        self.draw_chart()

    def action_search(self) -> None:
        self.query_one("#eval-tabs", TabbedContent).active = "tab-items"
        self.query_one("#filter-search", Input).focus()

    def action_show_items(self) -> None:
        self.query_one("#eval-tabs", TabbedContent).active = "tab-items"
        self.query_one("#item-table", DataTable).focus()

    # --- a new evaluation in the background --------------------------------------------------------------

    def target_run(self) -> RunRow | None:
        value = self.query_one("#result-choice", Select).value
        run_id = value.split("/")[0] if isinstance(value, str) else self.app.current_run
        return next((r for r in self.app.runs if r.run_id == run_id), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "new_evaluation":
            return None if self.evaluating else True
        return True

    def action_new_evaluation(self) -> None:
        row = self.target_run()
        if row is None:
            self.notify("No run to evaluate: train one first (mode 3).", severity="warning")
        elif not row.has_adapter:
            self.notify(f"{row.run_id} has no trained adapter yet; evaluate it when training has finished.",
                        severity="warning")
        else:
            self.evaluate(row)

    @work(exclusive=True, exit_on_error=False, group="evaluation", description="Evaluation")
    async def evaluate(self, row: RunRow) -> None:
        """Start ``carexpert eval RUN`` detached and report its progress from its log until it exits."""
        self.evaluating = row.run_id
        self.known_results = {f"{row.run_id}/{name}" for name in row.eval_results}
        log_path = row.paths.eval_log
        config = self.app.config_path if self.app.config_path.exists() else None
        proc = await child_commands.start_detached(self.app.services, log_path, "eval", row.run_id,
                                            *child_commands.config_args(config), extra_env=child_commands.LIVE_PROGRESS_ENV)
        offset, text = 0, ""
        while True:
            try:
                returncode = await asyncio.wait_for(proc.wait(), 0.3)
            except TimeoutError:
                returncode = None
            with open(log_path, "rb") as handle:
                handle.seek(offset)
                new = handle.read()
            offset += len(new)
            text = (text + new.decode("utf-8", errors="replace"))[-4096:]
            line = child_commands.last_progress_line(text, self.app.services.sanitize)
            if line:
                self.post_message(EvalProgressed(row.run_id, line, child_commands.progress_fraction(line)))
            if returncode is not None:
                self.post_message(EvalFinished(row.run_id, returncode, line))
                return

    def worker_failed(self, worker) -> None:
        if worker.group == "evaluation":
            self.evaluating = None
            self.query_one("#eval-progress-row").display = False

    @on(EvalProgressed)
    def show_progress(self, message: EvalProgressed) -> None:
        self.query_one("#eval-progress-row").display = True
        self.query_one("#eval-progress-text", Label).update(f"evaluating {message.run_id}: {message.line[:60]}")
        bar = self.query_one("#eval-progress", ProgressBar)
        bar.update(total=100 if message.fraction is not None else None, progress=(message.fraction or 0) * 100)

    @on(EvalFinished)
    def evaluation_finished(self, message: EvalFinished) -> None:
        self.evaluating = None
        self.query_one("#eval-progress-row").display = False
        if message.returncode == 0:
            self.notify(f"Evaluation of {message.run_id} finished; showing its results.")
            self.newest_of = (message.run_id, self.known_results)
            self.list_results(self.app.runs)
        else:
            self.notify(f"Evaluation of {message.run_id} failed (exit {message.returncode}):\n{message.tail}\n"
                        f"see {message.run_id}/eval.log", severity="error", timeout=12)
