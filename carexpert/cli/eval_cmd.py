"""``carexpert eval``: evaluate a run (base vs tuned), show saved results, add eval cases.

    carexpert eval RUN [--limit N] [--no-base]       evaluate RUN's adapter, save and print results
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from carexpert.cli.main import add_config_option
from carexpert.config import load_or_default
from carexpert.errors import UserError

PHASE_LABELS = {"load": "loading model", "tuned": "tuned answers", "base": "base answers",
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
                        fix="carexpert eval RUN [--limit N] [--no-base], or carexpert eval show RUN [RESULT]")
    if args.question:
        raise UserError("--question belongs to 'carexpert eval add-case'")
    return run_evaluate(args)


def run_evaluate(args: argparse.Namespace) -> int:
    from carexpert.evaluation import EvaluationCancelled, evaluate_run
    from carexpert.runs import RunPaths

    if args.limit is not None and args.limit < 0:
        raise UserError("--limit must be 0 (all) or more")
    config = load_or_default(args.config)
    run = RunPaths.of(config.train.runs_dir, args.target)
    console = Console(stderr=True)
    cancel = threading.Event()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        tasks: dict[str, int] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(PHASE_LABELS.get(phase, phase), total=total)
            progress.update(tasks[phase], completed=done, total=total)

        try:
            outcome = evaluate_run(config, run, limit=args.limit, compare_base=False if args.no_base else None,
                                   progress=report, cancel=cancel)
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
    Console().print(f"results saved in [bold]{outcome.path}[/bold]  (re-show with 'carexpert eval show {run.run_id}')")
    return 0


def _saved_result(args: argparse.Namespace):
    """The result folder named by ``RUN [RESULT]`` (newest when RESULT is left out)."""
    from carexpert.evaluation import find_result
    from carexpert.runs import RunPaths

    if not args.rest or len(args.rest) > 2:
        raise UserError("which run?", fix=f"carexpert eval {args.target} RUN [RESULT]")
    config = load_or_default(args.config)
    run = RunPaths.of(config.train.runs_dir, args.rest[0])
    if not run.exists():
        raise UserError(f"no run {run.run_id!r}", where=str(run.root), fix="see 'carexpert runs list'")
    return find_result(run, args.rest[1] if len(args.rest) > 1 else None)


def run_rescore(args: argparse.Namespace) -> int:
    from carexpert.evaluation.rescore import rescore_results

    outcome = rescore_results(_saved_result(args))
    render_summary(Console(), outcome.summary)
    Console().print(f"rescored {outcome.summary['rescored_from']} into [bold]{outcome.path}[/bold]")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from carexpert.evaluation import load_results

    results = load_results(_saved_result(args))
    console = Console()
    render_summary(console, results.summary)
    if args.items:
        render_items(console, results.items)
    console.print(f"[dim]{results.path}[/dim]")
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
    Console().print(f"{what} eval case [bold]{case.id}[/bold] ({case.category}) in {path}")
    if not (case.reference_text or case.key_terms or case.expect_refusal):
        Console().print("[yellow]no --reference, --key-terms or --expect-refusal: its answers are saved but not "
                        "scored[/yellow]")
    return 0


def _num(value, percent: bool = False, digits: int = 2) -> str:
    if value is None:
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


def _table(summary: dict, title: str, columns: tuple) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("category", no_wrap=True)
    table.add_column("n", justify="right")
    for label, *_ in columns:
        table.add_column(label, justify="right", no_wrap=True)
    for category, block in (summary.get("categories") or {}).items():
        table.add_row(category, str(block.get("n", "")),
                      *(_pair(block.get("base"), block.get("tuned"), key, pct, d) for _, key, pct, d in columns))
    overall = summary.get("overall") or {}
    table.add_section()
    table.add_row("overall", str(summary.get("n_items", "")),
                  *(_pair(overall.get("base"), overall.get("tuned"), key, pct, d) for _, key, pct, d in columns),
                  style="bold")
    return table


def render_summary(console: Console, summary: dict) -> None:
    """Per-category tables of base→tuned (accuracy, then how it answers), losses and timings."""
    base_shown = (summary.get("overall") or {}).get("base") is not None
    sides = "base→tuned" if base_shown else "tuned only (no base comparison)"
    console.print(_table(summary, f"{summary.get('run_id')}: accuracy, {sides}", ACCURACY_COLUMNS))
    console.print(_table(summary, f"{summary.get('run_id')}: how it answers, {sides}", STYLE_COLUMNS))
    loss, ppl, timings = summary.get("val_loss") or {}, summary.get("perplexity") or {}, summary.get("timings") or {}
    if loss.get("tuned") is not None:
        console.print(f"validation loss {_arrow(loss)}   perplexity {_arrow(ppl)}")
    seconds = {key: _num(timings.get(f"{key}_s"), digits=0) for key in ("total", "load", "tuned", "base")}
    console.print(f"[dim]model {summary.get('model')}  ·  {summary.get('created')}  ·  total {seconds['total']} s "
                  f"(load {seconds['load']}, tuned {seconds['tuned']}, base {seconds['base']})[/dim]")


def render_items(console: Console, items: list[dict]) -> None:
    table = Table(title="items", title_justify="left", show_lines=False)
    for column in ("id", "category", "base", "tuned", "tuned answer"):
        table.add_column(column, overflow="fold" if column == "tuned answer" else "ellipsis")
    for item in items:
        base, tuned = item.get("base"), item.get("tuned") or {}
        answer = (item.get("tuned_answer") or "").replace("\n", " ")
        table.add_row(str(item.get("id")), str(item.get("category")),
                      "—" if base is None else f"{base.get('verdict')} {_num(base.get('score'))}",
                      f"{tuned.get('verdict')} {_num(tuned.get('score'))}",
                      answer[:160] + ("…" if len(answer) > 160 else ""))
    console.print(table)
