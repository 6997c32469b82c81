"""Reading and validating the knowledge tables.

Every bad row becomes a ``UserError`` that names the file and the line (CSV) or the entry
(TOML ``[id]``) and says what to fix, never a ``KeyError`` traceback: the same checks guard
the builtin tables and the vehicle rows a user imports with ``carexpert kb import``.
"""

from __future__ import annotations

import csv
import functools
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.knowledge.types import (
    CATEGORIES,
    DRIVETRAINS,
    ID_PATTERN,
    INDUCTIONS,
    KNOWLEDGE_DIR,
    LB_FT_TO_NM,
    MAKER_CLAIM,
    NUMERIC_COLUMNS,
    POWERTRAINS,
    REQUIRED_TEXT_COLUMNS,
    TRANSMISSION_TYPES,
    VEHICLE_COLUMNS,
    BudgetTier,
    Concept,
    FictionalModel,
    Knowledge,
    MaintenanceItem,
    Vehicle,
)


@functools.lru_cache(maxsize=4)
def load_knowledge(directory: str | None = None) -> Knowledge:
    """Load and validate the knowledge tables (cached; pass a directory to load another copy)."""
    root = Path(directory) if directory else KNOWLEDGE_DIR
    sources = read_toml(root / "sources.toml")
    for table, entry in sources.items():
        if table != "segments" and not str(entry.get("note", "") if isinstance(entry, dict) else "").strip():
            raise UserError(f"table {table!r} has no source note", where=str(root / "sources.toml"))
    segments = dict(sources.get("segments", {}))
    vehicles = load_vehicle_csv(root / "vehicles.csv", segments)
    ids = {v.id for v in vehicles}
    concepts = tuple(_concept(raw, root / "concepts.toml") for raw in _entries(root / "concepts.toml", "concept"))
    buying_path = root / "buying.toml"
    buying = read_toml(buying_path)
    topics = tuple(_concept(raw, buying_path) for raw in _entries(buying_path, "topic", buying))
    tiers = tuple(_tier(raw, buying_path) for raw in _entries(buying_path, "budget_tier", buying))
    items = tuple(_maintenance(raw, root / "maintenance.toml") for raw in _entries(root / "maintenance.toml", "item"))
    fictional = tuple(_fictional(raw, ids, root / "fictional.toml") for raw in _entries(root / "fictional.toml", "model"))
    pairings = read_toml(root / "pairings.toml")
    rivals = tuple(_pair(p, ids, root / "pairings.toml") for p in pairings.get("rivals", []))
    siblings = tuple(_pair(p, ids, root / "pairings.toml") for p in pairings.get("hybrid_siblings", []))
    showcase = tuple(_entries(root / "showcase.toml", "case"))
    knowledge = Knowledge(
        vehicles=vehicles, concepts=concepts, maintenance=items, buying_topics=topics,
        budget_tiers=tuple(sorted(tiers, key=lambda t: t.max_usd)), fictional=fictional, rivals=rivals,
        hybrid_siblings=siblings, showcase=showcase, segments=segments,
        questions=read_toml(root / "questions.toml"), answers=read_toml(root / "answers.toml"),
        assumptions=dict(buying.get("assumptions", {})), sources=sources)
    _check_unique([c.id for c in (*concepts, *topics)], "concept/topic id", root / "concepts.toml")
    _check_unique([m.id for m in items], "maintenance id", root / "maintenance.toml")
    _check_showcase(knowledge, root / "showcase.toml")
    return knowledge


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError("knowledge file is missing", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"invalid TOML: {exc}", where=str(path)) from None


def _entries(path: Path, table: str, data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ``[[table]]`` entries of a TOML file, each checked to be a table."""
    data = read_toml(path) if data is None else data
    entries = data.get(table)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"expected [[{table}]] entries", where=str(path))
    return entries


def load_vehicle_csv(path: Path, segments: Mapping[str, str]) -> tuple[Vehicle, ...]:
    """The rows of a vehicles CSV file, validated; every bad row is reported with its line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for row in reader:
                rows.append((reader.line_num, row))
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise UserError("knowledge file is missing", where=str(path)) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read the CSV: {exc}", where=str(path), fix="save it as UTF-8 CSV") from None
    missing = [c for c in VEHICLE_COLUMNS if c not in header]
    if missing:
        raise UserError("the CSV header lacks vehicle columns", where=f"{path}:1", details=missing,
                        fix=f"use the columns of the builtin vehicles.csv: {','.join(VEHICLE_COLUMNS)}")
    return parse_vehicle_rows(rows, segments, str(path))


def parse_vehicle_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], segments: Mapping[str, str],
                       source: str) -> tuple[Vehicle, ...]:
    """Validate (line, row) pairs into vehicles; all bad rows are reported together, each with its line."""
    vehicles: list[Vehicle] = []
    errors: list[UserError] = []
    lines: dict[str, int] = {}
    for line, row in rows:
        where = f"{source}:{line}"
        try:
            vehicle = parse_vehicle(row, segments, where)
        except UserError as error:
            errors.append(error)
            continue
        if vehicle.id in lines:
            errors.append(UserError(f"repeated vehicle id {vehicle.id!r} (first on line {lines[vehicle.id]})",
                                    where=where))
            continue
        lines[vehicle.id] = line
        vehicles.append(vehicle)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise UserError(f"{len(errors)} bad vehicle rows", where=source,
                        details=[e.render().replace("\nfix: correct the row", "").replace("\n", "\n    ")
                                 for e in errors],
                        fix="correct these rows (columns as in the builtin vehicles.csv)")
    return tuple(vehicles)


def parse_vehicle(row: Mapping[str, Any], segments: Mapping[str, str], where: str) -> Vehicle:
    """One vehicle row (strings or JSON values) to a checked ``Vehicle``; ``where`` is 'file:line'."""
    if None in row:  # csv.DictReader puts surplus cells under the key None
        raise UserError("the row has more cells than the header", where=where)
    unknown = sorted(str(k) for k in row if k not in VEHICLE_COLUMNS)
    if unknown:
        raise UserError(f"unknown columns {unknown}", where=where, fix=f"use only {', '.join(VEHICLE_COLUMNS)}")
    values: dict[str, Any] = {key: "" if row.get(key) is None else str(row.get(key)).strip() for key in VEHICLE_COLUMNS}
    blank = [key for key in REQUIRED_TEXT_COLUMNS if not values[key]]
    if blank:
        raise UserError(f"missing {', '.join(blank)}", where=where)
    for key in (*NUMERIC_COLUMNS, "model_year"):
        text = values[key]
        try:
            number = float(text) if text else None
            if number is not None and key != "zero_to_sixty_s":
                if number != int(number):
                    raise ValueError
                number = int(number)
        except (ValueError, OverflowError):
            raise UserError(f"{key} must be a number, got {text!r}", where=where) from None
        if number is not None and number <= 0:
            raise UserError(f"{key} must be positive (leave it blank when unknown)", where=where)
        values[key] = number
    if values["model_year"] is None or not 1886 <= values["model_year"] <= 2100:
        raise UserError(f"model_year must be a year, got {row.get('model_year')!r}", where=where)
    vehicle = Vehicle(**values)
    problems = _vehicle_problems(vehicle, segments)
    if problems:
        raise UserError("bad vehicle row", where=where, details=problems, fix="correct the row")
    return vehicle


def _vehicle_problems(vehicle: Vehicle, segments: Mapping[str, str]) -> list[str]:
    problems = []
    if not ID_PATTERN.match(vehicle.id):
        problems.append(f"id {vehicle.id!r} must be lower-case words joined by hyphens")
    for label, value, allowed in (("segment", vehicle.segment, segments), ("drivetrain", vehicle.drivetrain, DRIVETRAINS),
                                  ("powertrain", vehicle.powertrain, POWERTRAINS),
                                  ("transmission_type", vehicle.transmission_type, TRANSMISSION_TYPES),
                                  ("induction", vehicle.induction, INDUCTIONS)):
        if value not in allowed:
            problems.append(f"{label} {value!r} is not one of {sorted(allowed)}")
    if (vehicle.torque_lb_ft is None) != (vehicle.torque_nm is None):
        problems.append("give torque in both lb-ft and N·m, or neither")
    elif vehicle.torque_lb_ft is not None and vehicle.torque_nm is not None:
        expected = vehicle.torque_lb_ft * LB_FT_TO_NM
        if abs(vehicle.torque_nm - expected) > max(2.0, 0.01 * expected):
            problems.append(f"torque_nm {vehicle.torque_nm} does not match {vehicle.torque_lb_ft} lb-ft "
                            f"(expected about {expected:.0f})")
    if (vehicle.zero_to_sixty_s is None) != (not vehicle.zero_to_sixty_source):
        problems.append(f"give zero_to_sixty_source ({MAKER_CLAIM!r} or the publication that tested it) "
                        "with zero_to_sixty_s, and only then")
    if vehicle.is_electric and vehicle.ev_range_mi is None:
        problems.append("an electric vehicle needs ev_range_mi")
    if vehicle.is_electric and vehicle.mpg_combined is not None:
        problems.append("an electric vehicle has no mpg_combined (use ev_range_mi)")
    if not vehicle.is_electric and vehicle.cylinders is None:
        problems.append("a combustion engine needs its cylinder count")
    return problems


def _require(raw: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in raw or raw[key] in ("", None, [])]
    if missing:
        raise UserError(f"missing {', '.join(missing)}", where=where)


def _concept(raw: dict[str, Any], path: Path) -> Concept:
    where = f"{path} [{raw.get('id', '?')}]"
    text_fields = ("summary", "explanation") if "explanation" in raw else ("summary", "advice")
    _require(raw, ("id", "category", *text_fields, "key_terms"), where)
    if not (raw.get("topic") or raw.get("compare")):
        raise UserError("missing topic or compare", where=where)
    if raw["category"] not in CATEGORIES:
        raise UserError(f"category {raw['category']!r} is not one of {list(CATEGORIES)}", where=where)
    explanation = raw.get("explanation") or raw["advice"]
    text = " ".join([raw["summary"], explanation, *raw.get("checklist", [])]).lower()
    absent = [term for term in raw["key_terms"] if term.lower() not in text]
    if absent:
        raise UserError("key terms the text never mentions", where=where, details=absent,
                        fix="mention each key term in the summary or explanation, or drop it")
    return Concept(
        id=raw["id"], category=raw["category"], summary=raw["summary"].strip(), explanation=explanation.strip(),
        key_terms=tuple(raw["key_terms"]), topic=raw.get("topic", ""), compare=tuple(raw.get("compare", ())),
        plural=bool(raw.get("plural", False)), pros=tuple(raw.get("pros", ())), cons=tuple(raw.get("cons", ())),
        verdict=raw.get("verdict", ""), checklist=tuple(raw.get("checklist", ())),
        questions=tuple(raw.get("questions", ())),
        examples={key: tuple(value) for key, value in raw.get("examples", {}).items()})


def _tier(raw: dict[str, Any], path: Path) -> BudgetTier:
    where = f"{path} [budget_tier {raw.get('label', '?')}]"
    _require(raw, ("max_usd", "label", "advice"), where)
    try:
        return BudgetTier(int(raw["max_usd"]), str(raw["label"]), str(raw["advice"]))
    except (TypeError, ValueError):
        raise UserError(f"max_usd must be a whole number of dollars, got {raw['max_usd']!r}", where=where) from None


def _maintenance(raw: dict[str, Any], path: Path) -> MaintenanceItem:
    where = f"{path} [{raw.get('id', '?')}]"
    _require(raw, ("id", "item", "action", "interval_note", "explanation", "neglect", "signs", "key_terms"), where)
    text = " ".join([raw["explanation"], raw.get("interval_note", ""), raw["neglect"], *raw["signs"]]).lower()
    absent = [term for term in raw["key_terms"] if term.lower() not in text]
    if absent:
        raise UserError("key terms the text never mentions", where=where, details=absent)
    miles = tuple(raw["miles"]) if "miles" in raw else None
    months = tuple(raw["months"]) if "months" in raw else None
    for label, pair in (("miles", miles), ("months", months)):
        if pair is not None and (len(pair) != 2 or not all(isinstance(x, int) for x in pair)
                                 or pair[0] > pair[1] or pair[0] <= 0):
            raise UserError(f"{label} must be [low, high] with 0 < low <= high", where=where)
    return MaintenanceItem(
        id=raw["id"], item=raw["item"], action=raw["action"], interval_note=raw["interval_note"].strip(),
        explanation=raw["explanation"].strip(), neglect=raw["neglect"].strip(), signs=tuple(raw["signs"]),
        key_terms=tuple(raw["key_terms"]), miles=miles, months=months,
        questions=tuple(raw.get("questions", ())))


def _fictional(raw: dict[str, Any], vehicle_ids: set[str], path: Path) -> FictionalModel:
    where = f"{path} [{raw.get('id', '?')}]"
    _require(raw, ("id", "make", "model", "year"), where)
    unknown = [s for s in raw.get("suggest", []) if s not in vehicle_ids]
    if unknown:
        raise UserError(f"suggests unknown vehicles {unknown}", where=where)
    if not isinstance(raw["year"], int):
        raise UserError(f"year must be a whole number, got {raw['year']!r}", where=where)
    return FictionalModel(id=raw["id"], make=raw["make"], model=raw["model"], year=raw["year"],
                          fictional_make=bool(raw.get("fictional_make", False)), suggest=tuple(raw.get("suggest", ())))


def _pair(pair: list[str], vehicle_ids: set[str], path: Path) -> tuple[str, str]:
    if len(pair) != 2 or any(p not in vehicle_ids for p in pair) or pair[0] == pair[1]:
        raise UserError(f"pairing {pair} must name two different vehicles from vehicles.csv", where=str(path))
    return pair[0], pair[1]


def _check_unique(ids: list[str], label: str, path: Path) -> None:
    seen: set[str] = set()
    repeated = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
    if repeated:
        raise UserError(f"repeated {label}s", where=str(path), details=repeated)


def _check_showcase(knowledge: Knowledge, path: Path) -> None:
    for case in knowledge.showcase:
        try:
            if case["kind"] == "concept":
                knowledge.concept(case["id"])
            elif case["kind"] == "maintenance":
                knowledge.maintenance_item(case["id"])
            elif case["kind"] == "spec":
                knowledge.vehicle(case["id"])
            elif case["kind"] == "compare_vehicles":
                for vehicle_id in case["ids"]:
                    knowledge.vehicle(vehicle_id)
            elif case["kind"] != "budget":
                raise KeyError(case["kind"])
        except KeyError as exc:
            raise UserError(f"showcase case refers to unknown {exc}", where=f"{path}: {case.get('question')}") from None
