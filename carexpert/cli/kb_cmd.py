"""``carexpert kb build | search QUERY | import FILE | remove NAME | show ID | stats``: the knowledge store from the shell.

The store is ``retrieval.store`` or knowledge.sqlite in ``data.data_dir``; every command
except ``build`` brings it up to date first, so a fresh checkout just works.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from carexpert.cli.main import add_config_option
from carexpert.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("kb", help="the knowledge store: build, search, import your own data, show, stats")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build or refresh the store (only what changed; atomic)")
    add_config_option(build)
    build.add_argument("--force", action="store_true", help="rebuild from scratch (imported files are kept)")
    build.set_defaults(func=run_build)

    search = actions.add_parser("search", help="the passages retrieval finds for a question, best first")
    add_config_option(search)
    search.add_argument("query", metavar="QUERY")
    search.add_argument("-k", type=int, metavar="N", help="how many passages (default: retrieval.top_k)")
    search.add_argument("--json", action="store_true", help="print a JSON list of {id, kind, score, how, title, text}")
    search.set_defaults(func=run_search)

    imports = actions.add_parser("import", help="add vehicle rows (.csv/.jsonl, the columns of vehicles.csv) or "
                                                "notes (.txt/.md); importing a file of the same name again replaces it")
    add_config_option(imports)
    imports.add_argument("file", metavar="FILE")
    imports.set_defaults(func=run_import)

    remove = actions.add_parser("remove", help="drop an imported file's passages (by the name 'kb stats' lists)")
    add_config_option(remove)
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=run_remove)

    show = actions.add_parser("show", help="print one passage by id (a vehicle id, concept:ID, maintenance:ID, ...)")
    add_config_option(show)
    show.add_argument("id", metavar="ID")
    show.set_defaults(func=run_show)

    stats = actions.add_parser("stats", help="passages per kind and source, vehicles, file size")
    add_config_option(stats)
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(func=run_stats)


def _config(args: argparse.Namespace) -> Any:
    from carexpert.config import load_or_default

    return load_or_default(args.config)


def _fresh_store(args: argparse.Namespace):
    from carexpert.knowledge.store import KnowledgeStore, build_store, needs_build, store_path

    path = store_path(_config(args))
    if needs_build(path):
        build_store(path)
    return KnowledgeStore(path)


def run_build(args: argparse.Namespace) -> int:
    from carexpert.knowledge.store import build_store, store_path

    path = store_path(_config(args))
    report = build_store(path, force=args.force)
    for name, state in report.items():
        print(f"{state:>8}  {name}")
    print(f"store: {path}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from carexpert.retrieval import Retriever

    config = _config(args)
    if args.k is not None and args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    retriever = Retriever(_fresh_store(args), top_k=config.retrieval.top_k, max_context_tokens=10**9,
                          min_score=config.retrieval.min_score)
    result = retriever.retrieve(args.query, k=args.k)
    if args.json:
        print(json.dumps([{"id": h.passage.id, "kind": h.passage.kind, "score": round(h.score, 3), "how": h.how,
                           "title": h.passage.title, "text": h.passage.text,
                           **({"sources": list(h.passage.sources)} if h.passage.sources else {})}
                          for h in result.hits],
                         ensure_ascii=False, indent=2))
        return 0
    if result.unknown is not None:
        print(f"unknown vehicle: {result.unknown.named!r} (the guard answers: {result.refusal})\n")
    if not result.hits:
        print("no passages found")
    for rank, hit in enumerate(result.hits, start=1):
        print(f"{rank}. {hit.passage.id}  [{hit.passage.kind}, {hit.how}, score {hit.score:.2f}]")
        print(f"   {hit.passage.text}\n")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from carexpert.knowledge.store import import_file, store_path

    path = store_path(_config(args))
    source, count = import_file(path, args.file)
    what = "vehicle" if source.kind == "vehicles" else "note passage"
    print(f"imported {count} {what}{'s' if count != 1 else ''} from {source.name} into {path}")
    if source.kind == "vehicles":
        print("retrieval now finds them by name: try carexpert kb search \"<year> <make> <model> horsepower\"")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from carexpert.knowledge.store import BUILTIN, build_store

    store = _fresh_store(args)
    imported = [name for name, _, _ in store.sources() if name != BUILTIN]
    if args.name not in imported:
        raise UserError(f"no imported file named {args.name!r}", where=str(store.path),
                        fix=f"imported: {', '.join(imported)}" if imported else "nothing has been imported")
    build_store(store.path, remove=[args.name])
    print(f"removed {args.name} from {store.path}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    store = _fresh_store(args)
    passage = store.passage(args.id)
    if passage is None and args.id.startswith("derived:"):
        raise UserError(f"{args.id!r} is computed for a question, not stored",
                        fix="see it with carexpert kb search and the question, e.g. "
                            "\"Which is more powerful, the 2024 Camry LE or the 2023 Accord LX?\"")
    if passage is None:
        raise UserError(f"no passage with id {args.id!r}", where=str(store.path),
                        fix="find ids with 'carexpert kb search QUERY' (vehicles use their vehicles.csv id)")
    print(f"{passage.id}  [{passage.kind}]  {passage.title}")
    print(passage.text)
    return 0


def run_stats(args: argparse.Namespace) -> int:
    store = _fresh_store(args)
    stats = store.stats()
    stats["sources"] = [{"name": n, "kind": k} for n, k, _ in store.sources()]
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"store: {stats['path']} ({int(stats['bytes']) / 1e6:.1f} MB)")
    print(f"passages: {stats['passages']}  vehicles: {stats['vehicles']}")
    for kind, count in dict(stats["by_kind"]).items():
        print(f"  {kind:<12} {count}")
    print("sources:")
    for name, count in dict(stats["by_source"]).items():
        print(f"  {name:<24} {count} passages")
    return 0
