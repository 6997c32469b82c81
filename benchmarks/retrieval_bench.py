"""Retrieval latency with a 10,000-vehicle store, on the CPU: ``python benchmarks/retrieval_bench.py``.

Generates synthetic vehicle rows derived from the real ones (other model years, other trims,
and invented model names under the real makes, so the entity index has as many distinct
models as a real catalogue would), imports them into a fresh store next to the builtin
tables, then times ``Retriever.retrieve`` over questions from the builtin test split and
questions that name synthetic vehicles. Prints one JSON object: build and index times,
p50/p95/max per question in milliseconds (wall time, and the process's CPU time, which a
loaded shared machine does not inflate), and how often the named synthetic vehicle came first.

Options: --vehicles N (default 10000), --questions N (default 400), --repeat N (default 3),
--out FILE (also write the JSON there).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carexpert.knowledge import VEHICLE_COLUMNS, Vehicle, load_knowledge
from carexpert.knowledge.store import KnowledgeStore, build_store, import_file
from carexpert.retrieval import Retriever

TRIMS = ("Sport", "Limited", "Touring", "SE", "XLE", "Premium", "Platinum", "EX", "SV", "GT")
SYLLABLES = ("ar", "ve", "lo", "ta", "ri", "no", "ka", "sen", "mar", "tel", "vi", "do", "ra", "zen", "cor", "li")


def synthetic_rows(count: int, seed: int = 7) -> list[dict[str, object]]:
    """``count`` valid vehicle rows: 60% other years/trims of real models, 40% invented models of real makes."""
    rng = random.Random(seed)
    real = load_knowledge().vehicles
    rows: list[dict[str, object]] = []
    ids: set[str] = {v.id for v in real}
    names: set[str] = {v.model for v in real}
    while len(rows) < count:
        base = rng.choice(real)
        if rng.random() < 0.6:
            model = base.model
        else:
            model = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
            if model in names:
                continue
            names.add(model)
        for year in rng.sample(range(2005, 2026), 3):
            trim = rng.choice(TRIMS)
            vehicle_id = "-".join(f"{base.make} {model} {year} {trim}".lower().replace(".", "").split())
            vehicle_id = "".join(c if c.isalnum() or c == "-" else "-" for c in vehicle_id).strip("-")
            while "--" in vehicle_id:
                vehicle_id = vehicle_id.replace("--", "-")
            if vehicle_id in ids or len(rows) >= count:
                continue
            ids.add(vehicle_id)
            rows.append(_row(base, vehicle_id, model, year, trim, rng))
    return rows


def _row(base: Vehicle, vehicle_id: str, model: str, year: int, trim: str, rng: random.Random) -> dict[str, object]:
    row = {c: getattr(base, c) for c in VEHICLE_COLUMNS}
    scale = rng.uniform(0.85, 1.15)
    row.update(id=vehicle_id, model=model, model_year=year, trim=trim)
    if base.hp:
        row["hp"] = round(base.hp * scale)
    if base.torque_lb_ft:
        row["torque_lb_ft"] = round(base.torque_lb_ft * scale)
        row["torque_nm"] = round(row["torque_lb_ft"] * 1.3558179483)
    if base.msrp_usd:
        row["msrp_usd"] = round(base.msrp_usd * scale, -1)
    return {k: "" if v is None else v for k, v in row.items()}


def questions(rows: list[dict[str, object]], count: int, seed: int = 11) -> list[tuple[str, str | None]]:
    """(question, id of the vehicle it names or None): half from the builtin test split, half synthetic."""
    from carexpert.config import Config
    from carexpert.dataset import build_from_config
    from carexpert.knowledge.recall import question_of

    rng = random.Random(seed)
    test = build_from_config(Config()).splits["test"]
    asked = [(question_of(r), None) for r in rng.sample(test, min(count // 2, len(test)))]
    patterns = ("How much horsepower does the {y} {m} {o} {t} make?", "What's the curb weight of the {y} {m} {o} {t}?",
                "{y} {o} {t} 0-60", "Is the {y} {m} {o} {t} a good buy?")  # year and trim: one row fits
    for row in rng.sample(rows, count - len(asked)):
        pattern = rng.choice(patterns)
        asked.append((pattern.format(y=row["model_year"], m=row["make"], o=row["model"], t=row["trim"]), str(row["id"])))
    rng.shuffle(asked)
    return asked


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "knowledge.sqlite"
        rows = synthetic_rows(args.vehicles - len(load_knowledge().vehicles))
        csv_path = Path(folder) / "synthetic.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=VEHICLE_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        started = time.perf_counter()
        build_store(store)
        import_file(store, csv_path)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        retriever = Retriever(KnowledgeStore(store))
        index_s = time.perf_counter() - started
        asked = questions(rows, args.questions)
        for question, _ in asked[:20]:  # warm the page cache and the code paths
            retriever.retrieve(question)
        times: list[float] = []
        cpu: list[float] = []
        first = named = 0
        for _ in range(args.repeat):
            for question, vehicle_id in asked:
                started, started_cpu = time.perf_counter(), time.process_time()
                result = retriever.retrieve(question)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
                if vehicle_id:
                    named += 1
                    first += bool(result.hits) and result.hits[0].passage.id == vehicle_id
        stats = retriever.store.stats()
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
        "vehicles": stats["vehicles"], "passages": stats["passages"], "store_mb": round(int(stats["bytes"]) / 1e6, 1),
        "build_and_import_s": round(build_s, 2), "entity_index_s": round(index_s, 3),
        "questions": len(asked), "timed_calls": len(times),
        "p50_ms": round(statistics.median(times), 2), "p95_ms": round(percentile(times, 0.95), 2),
        "max_ms": round(max(times), 2), "mean_ms": round(statistics.fmean(times), 2),
        # CPU time of this process alone: on a shared, loaded machine wall time includes waiting for a core
        "cpu_p50_ms": round(statistics.median(cpu), 2), "cpu_p95_ms": round(percentile(cpu, 0.95), 2),
        "load_average_1m": round(os.getloadavg()[0], 2), "cpu_cores": os.cpu_count(),
        "synthetic_named_first": round(first / named, 4) if named else None,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
