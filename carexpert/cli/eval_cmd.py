"""``carexpert eval``: evaluate a run (base vs tuned, closed-book and with retrieval), show saved results, add cases.

    carexpert eval RUN [--limit N] [--sides S,S] [--no-base]
                                                     evaluate RUN's adapter, save and print results
                                                     (sides: base_closed, base_rag, tuned_closed, tuned_rag, all)
    carexpert eval show RUN [RESULT] [--items]       print saved results (newest by default)
    carexpert eval rescore RUN [RESULT]              score saved answers again with the current metrics
    carexpert eval add-case --question Q [--reference A] [--category C] [--key-terms T ...]
                                                     save a question that every later evaluation asks
"""

from __future__ import annotations

import argparse
import threading

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from carexpert.cli.main import add_config_option
from carexpert.config import load_or_default
from carexpert.errors import UserError
from carexpert.evaluation.sides import SIDES, baseline_side, headline_side, parse_sides
from carexpert.textsafe import safe_markup

PHASE_LABELS = {"load": "loading model", "retrieve": "retrieving passages",
                **{name: f"{side.label} answers" for name, side in SIDES.items()},
                "val_loss_tuned": "validation loss (tuned)", "val_loss_base": "validation loss (base)"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a run base vs tuned; show results; add eval cases",
        description=__doc__.replace("``", ""), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", metavar="RUN | show | rescore | add-case", help="a run id, or an action")
    parser.add_argument("rest", nargs="*", metavar="ARG", help="for 'show' and 'rescore': RUN [RESULT]")
    add_config_option(parser)
    run_group = parser.add_argument_group("evaluating a run")
    run_group.add_argument("--limit", type=int, default=None, metavar="N",
                           help="evaluate only the first N held-out items (showcase and your cases always run)")
    run_group.add_argument("--sides", default=None, metavar="S,S",
                           help="which sides to evaluate, comma-separated: base_closed, base_rag, tuned_closed, "
                                "tuned_rag, or all (default: retrieval sides when retrieval.enabled, base sides "
                                "when eval.compare_base)")
    run_group.add_argument("--no-base", action="store_true", help="skip the base model (adapter off) answers")
    show_group = parser.add_argument_group("show")
    show_group.add_argument("--items", action="store_true", help="also list every question with both verdicts")
    case_group = parser.add_argument_group("add-case")
    case_group.add_argument("--question", "-q", help="the question to ask")
    case_group.add_argument("--reference", "-r", default="", help="a reference answer (numbers in it are checked)")
    case_group.add_argument("--category", default="user", help="category to report it under (default: user)")
    case_group.add_argument("--key-terms", nargs="+", default=[], metavar="TERM",
                            help="terms a good answer mentions ('a|b' accepts either)")
    case_group.add_argument("--expect-refusal", action="store_true",
                            help="the right answer is to say it does not know (e.g. a made-up model)")
    parser.set_defaults(func=run_eval_command)


def run_eval_command(args: argparse.Namespace) -> int:
    if args.target == "show":
        return run_show(args)
    if args.target == "add-case":
        return run_add_case(args)
    if args.target == "rescore":
        return run_rescore(args)
    if args.rest:
        raise UserError(f"unexpected argument(s) {' '.join(args.rest)!r}",
                        fix="carexpert eval RUN [--limit N] [--sides S,S] [--no-base], "
                            "or carexpert eval show RUN [RESULT]")
    if args.question:
        raise UserError("--question belongs to 'carexpert eval add-case'")
    return run_evaluate(args)


def run_evaluate(args: argparse.Namespace) -> int:
    from carexpert.evaluation import EvaluationCancelled, evaluate_run
    from carexpert.runs.control import find_run

    if args.limit is not None and args.limit < 0:
        raise UserError("--limit must be 0 (all) or more")
    sides = parse_sides(args.sides) if args.sides is not None else None
    config = load_or_default(args.config)
    run = find_run(config.train.runs_dir, args.target, marked=False).paths  # inside runs_dir, never a link
    console = Console(stderr=True)
    cancel = threading.Event()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(PHASE_LABELS.get(phase, phase), total=total)
            progress.update(tasks[phase], completed=done, total=total)

        try:
            outcome = evaluate_run(config, run, limit=args.limit, compare_base=False if args.no_base else None,
                                   sides=sides, progress=report, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise
        except EvaluationCancelled:
            console.print("evaluation cancelled; nothing saved")
            return 130
    render_summary(Console(), outcome.summary)
    if outcome.summary.get("data_matches_training") is False:
        Console().print("[yellow]warning: the data differs from what this run trained on (dataset fingerprint "
                        "changed), so some held-out questions may have been in its training set[/yellow]")
    Console().print(f"results saved in [bold]{safe_markup(outcome.path)}[/bold]  (re-show with 'carexpert eval show {run.run_id}')")
    return 0


def _saved_result(args: argparse.Namespace):
    """The result folder named by ``RUN [RESULT]`` (newest when RESULT is left out)."""
    from carexpert.evaluation import find_result
    from carexpert.runs.control import find_run

    if not args.rest or len(args.rest) > 2:
        raise UserError("which run?", fix=f"carexpert eval {args.target} RUN [RESULT]")
    config = load_or_default(args.config)
    run = find_run(config.train.runs_dir, args.rest[0], marked=False).paths  # only read
    return find_result(run, args.rest[1] if len(args.rest) > 1 else None)


def run_rescore(args: argparse.Namespace) -> int:
    from carexpert.evaluation.rescore import rescore_results

    outcome = rescore_results(_saved_result(args))
    render_summary(Console(), outcome.summary)
    Console().print(f"rescored {safe_markup(outcome.summary.get('rescored_from'))} into "
                    f"[bold]{safe_markup(outcome.path)}[/bold]")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from carexpert.evaluation import load_results

    results = load_results(_saved_result(args))
    console = Console()
    render_summary(console, results.summary)
    if args.items:
        render_items(console, results.items, results.summary.get("sides"))
    console.print(f"[dim]{safe_markup(results.path)}[/dim]")
    return 0


def run_add_case(args: argparse.Namespace) -> int:
    from carexpert.evaluation import add_user_case, cases_file

    if args.rest:
        raise UserError(f"unexpected argument(s) {' '.join(args.rest)!r}", fix="pass the question with --question")
    if not args.question:
        raise UserError("add-case needs --question", fix='carexpert eval add-case --question "..." [--reference "..."]')
    config = load_or_default(args.config)
    path = cases_file(config.data.data_dir)
    case, replaced = add_user_case(path, args.question, reference_text=args.reference, category=args.category,
                                   key_terms=args.key_terms, expect_refusal=args.expect_refusal)
    what = "updated" if replaced else "added"
    Console().print(f"{what} eval case [bold]{case.id}[/bold] ({safe_markup(case.category)}) in {safe_markup(path)}")
    if not (case.reference_text or case.key_terms or case.expect_refusal):
        Console().print("[yellow]no --reference, --key-terms or --expect-refusal: its answers are saved but not "
                        "scored[/yellow]")
    return 0


def _num(value, percent: bool = False, digits: int = 2) -> str:
    """A figure from a results file (which may hold anything), or a dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value * 100:.0f}%" if percent else f"{value:.{digits}f}"


def _pair(base: dict | None, tuned: dict | None, key: str, percent: bool = False, digits: int = 2) -> str:
    """'base→tuned' for one metric, or just the tuned value without a base."""
    tuned_text = _num((tuned or {}).get(key), percent, digits)
    if base is None:
        return tuned_text
    return f"{_num(base.get(key), percent, digits)}→{tuned_text}"


def _arrow(pair: dict) -> str:
    """'base → tuned' for a {"base", "tuned"} pair such as the validation loss."""
    if pair.get("base") is None:
        return _num(pair.get("tuned"))
    return f"{_num(pair.get('base'))} → {_num(pair.get('tuned'))}"


# (column title, summary key, as percent, digits): two tables so each fits an 80-column terminal.
ACCURACY_COLUMNS = (("score", "score", False, 2), ("correct", "correct_rate", True, 0),
                    ("numbers", "numeric_accuracy", True, 0), ("concepts", "concept_coverage", True, 0),
                    ("refused", "refusal_rate", True, 0))
STYLE_COLUMNS = (("clean stop", "clean_stop_rate", True, 0), ("repetition", "repetition_rate", True, 0),
                 ("tokens", "mean_length", False, 0), ("words", "mean_words", False, 0))


def _pair_sides(summary: dict) -> tuple[str | None, str | None]:
    """(base side, tuned side) of the arrow tables: the headline tuned side and the base side beside it."""
    tuned = headline_side(summary.get("sides") or [])
    return baseline_side(summary.get("sides") or [], tuned), tuned


def _table(summary: dict, title: str, columns: tuple) -> Table:
    base_side, tuned_side = _pair_sides(summary)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("category", no_wrap=True)
    table.add_column("n", justify="right")
    for label, *_ in columns:
        table.add_column(label, justify="right", no_wrap=True)
    for category, block in (summary.get("categories") or {}).items():
        block = block if isinstance(block, dict) else {}
        table.add_row(safe_markup(category, 60), safe_markup(block.get("n", "")),
                      *(_pair(block.get(base_side) if base_side else None, block.get(tuned_side), key, pct, d)
                        for _, key, pct, d in columns))
    overall = summary.get("overall") or {}
    table.add_section()
    table.add_row("overall", safe_markup(summary.get("n_items", "")),
                  *(_pair(overall.get(base_side) if base_side else None, overall.get(tuned_side), key, pct, d)
                    for _, key, pct, d in columns),
                  style="bold")
    return table


def _sides_table(summary: dict) -> Table:
    """The score of every evaluated side, per category: the four columns side by side."""
    sides = list(summary.get("sides") or [])
    table = Table(title=f"{safe_markup(summary.get('run_id'), 80)}: score by side", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("category", no_wrap=True)
    table.add_column("n", justify="right")
    for side in sides:
        table.add_column(SIDES[side].short, justify="right", no_wrap=True)
    for category, block in (summary.get("categories") or {}).items():
        block = block if isinstance(block, dict) else {}
        table.add_row(safe_markup(category, 60), safe_markup(block.get("n", "")),
                      *(_num((block.get(side) or {}).get("score")) for side in sides))
    overall = summary.get("overall") or {}
    table.add_section()
    table.add_row("overall", safe_markup(summary.get("n_items", "")),
                  *(_num((overall.get(side) or {}).get("score")) for side in sides), style="bold")
    return table


# (column title, summary key): refusals and grounding, one row per side (all percentages).
GROUNDING_COLUMNS = (("hallucinated", "hallucination_rate"), ("false refusals", "false_refusal_rate"),
                     ("guard", "guard_refusal_rate"), ("made-up refused", "correct_refusal_rate"),
                     ("by model", "model_correct_refusal_rate"))


def _grounding_table(summary: dict) -> Table:
    table = Table(title=f"{safe_markup(summary.get('run_id'), 80)}: grounding and refusals (overall)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("side", no_wrap=True)
    for label, _ in GROUNDING_COLUMNS:
        table.add_column(label, justify="right", no_wrap=True)
    overall = summary.get("overall") or {}
    for side in summary.get("sides") or []:
        block = overall.get(side) or {}
        table.add_row(SIDES[side].short, *(_num(block.get(key), percent=True) for _, key in GROUNDING_COLUMNS))
    return table


def render_summary(console: Console, summary: dict) -> None:
    """Score by side and category, then base→tuned tables (accuracy, how it answers), grounding per side,
    losses and timings."""
    base_side, tuned_side = _pair_sides(summary)
    setting = "with retrieval" if tuned_side == "tuned_rag" else "closed-book"
    sides = f"base→tuned ({setting})" if base_side else f"tuned only ({setting}, no base comparison)"
    if len(summary.get("sides") or []) > 1:
        console.print(_sides_table(summary))
    run_id = safe_markup(summary.get("run_id"), 80)
    console.print(_table(summary, f"{run_id}: accuracy, {sides}", ACCURACY_COLUMNS))
    console.print(_table(summary, f"{run_id}: how it answers, {sides}", STYLE_COLUMNS))
    console.print(_grounding_table(summary))
    loss, ppl, timings = summary.get("val_loss") or {}, summary.get("perplexity") or {}, summary.get("timings") or {}
    if loss.get("tuned") is not None:
        console.print(f"validation loss {_arrow(loss)}   perplexity {_arrow(ppl)}")
    parts = [f"{safe_markup(key[:-2].replace('_', ' '), 40)} {_num(value, digits=0)}" for key, value in timings.items()
             if key not in ("total_s",) and value is not None]
    console.print(f"[dim]model {safe_markup(summary.get('model'))}  ·  {safe_markup(summary.get('created'))}  ·  total "
                  f"{_num(timings.get('total_s'), digits=0)} s ({', '.join(parts)})[/dim]")


def render_items(console: Console, items: list[dict], sides: list[str] | None = None) -> None:
    sides = list(sides or [s for s in SIDES if any(item.get(s) for item in items)])
    shown = headline_side(sides)
    table = Table(title="items", title_justify="left", show_lines=False)
    table.add_column("id", overflow="ellipsis")
    table.add_column("category", overflow="ellipsis")
    for side in sides:
        table.add_column(SIDES[side].short, overflow="ellipsis")
    table.add_column(f"{SIDES[shown].label if shown else 'tuned'} answer", overflow="fold")
    for item in (item for item in items if isinstance(item, dict)):  # a results file is text anyone could edit
        answer = item.get(f"{shown}_answer") if shown else ""
        cells = []
        for side in sides:
            result = item.get(side)
            cells.append("—" if not isinstance(result, dict) else
                         f"{'guard' if result.get('guard') else safe_markup(result.get('verdict'), 20)} "
                         f"{_num(result.get('score'))}")
        table.add_row(safe_markup(item.get("id"), 80), safe_markup(item.get("category"), 60), *cells,
                      safe_markup(answer if isinstance(answer, str) else "", 160))
    console.print(table)
