"""The curated automotive knowledge, loaded from the data files beside this module.

Facts live in data files (CSV and TOML) so they can be reviewed and corrected without
touching code, and every table carries a source note in ``sources.toml``. Loading
validates the tables, so a typo (an unknown segment, torque in N·m that does not match
lb-ft, a key term the explanation never mentions) fails loudly instead of quietly
teaching the model something wrong.
"""

from __future__ import annotations

import csv
import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carexpert.errors import UserError

KNOWLEDGE_DIR = Path(__file__).parent
CATEGORIES = ("specs", "engines", "evs", "buying", "maintenance", "comparisons", "safety", "advanced_tech")
LB_FT_TO_NM = 1.3558179483
DRIVETRAINS = {"FWD": "front-wheel drive", "RWD": "rear-wheel drive", "AWD": "all-wheel drive",
               "4WD": "four-wheel drive"}
POWERTRAINS = ("gas", "mild hybrid", "hybrid", "plug-in hybrid", "electric")
TRANSMISSION_TYPES = ("automatic", "cvt", "manual", "dct", "ecvt", "single-speed")
INDUCTIONS = ("naturally aspirated", "turbocharged", "twin-turbocharged", "supercharged", "electric")
# zero_to_sixty_source: "maker" for the manufacturer's claim, else the publication that measured it.
MAKER_CLAIM = "maker"
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_NUMERIC = ("cylinders", "hp", "torque_lb_ft", "torque_nm", "zero_to_sixty_s", "curb_weight_lb",
            "mpg_combined", "ev_range_mi", "msrp_usd")


@dataclass(frozen=True)
class Vehicle:
    """One vehicle row; a None number means the figure is not published or not confirmed."""

    id: str
    make: str
    model: str
    model_year: int
    trim: str
    segment: str
    body: str
    drivetrain: str
    powertrain: str
    engine: str
    induction: str
    transmission: str
    transmission_type: str
    cylinders: int | None = None
    hp: int | None = None
    torque_lb_ft: int | None = None
    torque_nm: int | None = None
    zero_to_sixty_s: float | None = None
    zero_to_sixty_source: str = ""
    curb_weight_lb: int | None = None
    mpg_combined: int | None = None
    ev_range_mi: int | None = None
    msrp_usd: int | None = None

    @property
    def fact_id(self) -> str:
        return f"vehicle:{self.id}"

    @property
    def name(self) -> str:
        """'2024 Toyota Camry LE' (a 'Base' trim, or one repeated in the model name, is left out)."""
        return f"{self.model_year} {self.make} {self.model}{self.trim_suffix}"

    @property
    def trim_suffix(self) -> str:
        """' LE', or '' for a 'Base' trim or one the model name already ends with (Civic Type R)."""
        return "" if self.trim == "Base" or self.model.endswith(self.trim) else f" {self.trim}"

    @property
    def zero_to_sixty_is_claim(self) -> bool:
        """True when the 0-60 figure is the manufacturer's claim rather than a magazine's measurement."""
        return self.zero_to_sixty_source == MAKER_CLAIM

    @property
    def is_electric(self) -> bool:
        return self.powertrain == "electric"

    @property
    def is_electrified(self) -> bool:
        return self.powertrain != "gas"


@dataclass(frozen=True)
class Concept:
    """An idea to explain (or, with ``compare``, ideas to set side by side); buying topics too."""

    id: str
    category: str
    summary: str
    explanation: str
    key_terms: tuple[str, ...]
    topic: str = ""
    compare: tuple[str, ...] = ()
    plural: bool = False
    pros: tuple[str, ...] = ()
    cons: tuple[str, ...] = ()
    verdict: str = ""
    checklist: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def fact_id(self) -> str:
        return f"{'buying' if self.category == 'buying' else 'concept'}:{self.id}"


@dataclass(frozen=True)
class MaintenanceItem:
    id: str
    item: str
    action: str
    interval_note: str
    explanation: str
    neglect: str
    signs: tuple[str, ...]
    key_terms: tuple[str, ...]
    miles: tuple[int, int] | None = None
    months: tuple[int, int] | None = None
    questions: tuple[str, ...] = ()

    @property
    def fact_id(self) -> str:
        return f"maintenance:{self.id}"


@dataclass(frozen=True)
class BudgetTier:
    max_usd: int
    label: str
    advice: str


@dataclass(frozen=True)
class FictionalModel:
    id: str
    make: str
    model: str
    year: int
    fictional_make: bool = False
    suggest: tuple[str, ...] = ()

    @property
    def fact_id(self) -> str:
        return f"fictional:{self.id}"


@dataclass(frozen=True)
class Knowledge:
    """Everything the generator draws on, validated."""

    vehicles: tuple[Vehicle, ...]
    concepts: tuple[Concept, ...]
    maintenance: tuple[MaintenanceItem, ...]
    buying_topics: tuple[Concept, ...]
    budget_tiers: tuple[BudgetTier, ...]
    fictional: tuple[FictionalModel, ...]
    rivals: tuple[tuple[str, str], ...]
    hybrid_siblings: tuple[tuple[str, str], ...]
    showcase: tuple[dict[str, Any], ...]
    segments: dict[str, str]
    questions: dict[str, Any]
    answers: dict[str, Any]
    assumptions: dict[str, Any]
    sources: dict[str, Any]

    def vehicle(self, vehicle_id: str) -> Vehicle:
        for vehicle in self.vehicles:
            if vehicle.id == vehicle_id:
                return vehicle
        raise KeyError(vehicle_id)

    def concept(self, concept_id: str) -> Concept:
        for concept in (*self.concepts, *self.buying_topics):
            if concept.id == concept_id:
                return concept
        raise KeyError(concept_id)

    def maintenance_item(self, item_id: str) -> MaintenanceItem:
        for item in self.maintenance:
            if item.id == item_id:
                return item
        raise KeyError(item_id)


@functools.lru_cache(maxsize=4)
def load_knowledge(directory: str | None = None) -> Knowledge:
    """Load and validate the knowledge tables (cached; pass a directory to load another copy)."""
    root = Path(directory) if directory else KNOWLEDGE_DIR
    sources = _toml(root / "sources.toml")
    for table, entry in sources.items():
        if table != "segments" and not str(entry.get("note", "")).strip():
            raise UserError(f"table {table!r} has no source note", where=str(root / "sources.toml"))
    segments = dict(sources.get("segments", {}))
    vehicles = _load_vehicles(root / "vehicles.csv", segments)
    ids = {v.id for v in vehicles}
    concepts = tuple(_concept(raw, root / "concepts.toml") for raw in _toml(root / "concepts.toml")["concept"])
    buying = _toml(root / "buying.toml")
    topics = tuple(_concept(raw, root / "buying.toml") for raw in buying["topic"])
    tiers = tuple(BudgetTier(int(t["max_usd"]), t["label"], t["advice"]) for t in buying["budget_tier"])
    items = tuple(_maintenance(raw, root / "maintenance.toml") for raw in _toml(root / "maintenance.toml")["item"])
    fictional = tuple(_fictional(raw, ids, root / "fictional.toml") for raw in _toml(root / "fictional.toml")["model"])
    pairings = _toml(root / "pairings.toml")
    rivals = tuple(_pair(p, ids, root / "pairings.toml") for p in pairings.get("rivals", []))
    siblings = tuple(_pair(p, ids, root / "pairings.toml") for p in pairings.get("hybrid_siblings", []))
    showcase = tuple(_toml(root / "showcase.toml")["case"])
    knowledge = Knowledge(
        vehicles=vehicles, concepts=concepts, maintenance=items, buying_topics=topics,
        budget_tiers=tuple(sorted(tiers, key=lambda t: t.max_usd)), fictional=fictional, rivals=rivals,
        hybrid_siblings=siblings, showcase=showcase, segments=segments,
        questions=_toml(root / "questions.toml"), answers=_toml(root / "answers.toml"),
        assumptions=dict(buying.get("assumptions", {})), sources=sources)
    _check_unique([c.id for c in (*concepts, *topics)], "concept/topic id", root / "concepts.toml")
    _check_unique([m.id for m in items], "maintenance id", root / "maintenance.toml")
    _check_showcase(knowledge, root / "showcase.toml")
    return knowledge


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError("knowledge file is missing", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"invalid TOML: {exc}", where=str(path)) from None


def _load_vehicles(path: Path, segments: dict[str, str]) -> tuple[Vehicle, ...]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    vehicles = [_vehicle(row, segments, f"{path}:{number}") for number, row in enumerate(rows, start=2)]
    _check_unique([v.id for v in vehicles], "vehicle id", path)
    return tuple(vehicles)


def _vehicle(row: dict[str, str], segments: dict[str, str], where: str) -> Vehicle:
    values: dict[str, Any] = {key: (value or "").strip() for key, value in row.items()}
    for key in _NUMERIC:
        text = values.get(key, "")
        try:
            values[key] = None if text == "" else (float(text) if key == "zero_to_sixty_s" else int(text))
        except ValueError:
            raise UserError(f"{key} must be a number, got {text!r}", where=where) from None
        if values[key] is not None and values[key] <= 0:
            raise UserError(f"{key} must be positive (leave it blank when unknown)", where=where)
    values["model_year"] = int(values["model_year"])
    vehicle = Vehicle(**values)
    problems = []
    if not _ID.match(vehicle.id):
        problems.append(f"id {vehicle.id!r} must be lower-case words joined by hyphens")
    for label, value, allowed in (("segment", vehicle.segment, segments), ("drivetrain", vehicle.drivetrain, DRIVETRAINS),
                                  ("powertrain", vehicle.powertrain, POWERTRAINS),
                                  ("transmission_type", vehicle.transmission_type, TRANSMISSION_TYPES),
                                  ("induction", vehicle.induction, INDUCTIONS)):
        if value not in allowed:
            problems.append(f"{label} {value!r} is not one of {sorted(allowed)}")
    if (vehicle.torque_lb_ft is None) != (vehicle.torque_nm is None):
        problems.append("give torque in both lb-ft and N·m, or neither")
    elif vehicle.torque_lb_ft is not None:
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
    if problems:
        raise UserError("bad vehicle row", where=where, details=problems, fix="correct the row in vehicles.csv")
    return vehicle


def _concept(raw: dict[str, Any], path: Path) -> Concept:
    where = f"{path} [{raw.get('id', '?')}]"
    text_fields = ("summary", "explanation") if "explanation" in raw else ("summary", "advice")
    missing = [key for key in ("id", "category", *text_fields, "key_terms") if not raw.get(key)]
    if missing or not (raw.get("topic") or raw.get("compare")):
        raise UserError(f"missing {', '.join(missing) or 'topic or compare'}", where=where)
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


def _maintenance(raw: dict[str, Any], path: Path) -> MaintenanceItem:
    where = f"{path} [{raw.get('id', '?')}]"
    text = " ".join([raw["explanation"], raw.get("interval_note", ""), raw["neglect"], *raw["signs"]]).lower()
    absent = [term for term in raw["key_terms"] if term.lower() not in text]
    if absent:
        raise UserError("key terms the text never mentions", where=where, details=absent)
    miles = tuple(raw["miles"]) if "miles" in raw else None
    months = tuple(raw["months"]) if "months" in raw else None
    for label, pair in (("miles", miles), ("months", months)):
        if pair is not None and (len(pair) != 2 or pair[0] > pair[1] or pair[0] <= 0):
            raise UserError(f"{label} must be [low, high] with 0 < low <= high", where=where)
    return MaintenanceItem(
        id=raw["id"], item=raw["item"], action=raw["action"], interval_note=raw["interval_note"].strip(),
        explanation=raw["explanation"].strip(), neglect=raw["neglect"].strip(), signs=tuple(raw["signs"]),
        key_terms=tuple(raw["key_terms"]), miles=miles, months=months, questions=tuple(raw.get("questions", ())))


def _fictional(raw: dict[str, Any], vehicle_ids: set[str], path: Path) -> FictionalModel:
    unknown = [s for s in raw.get("suggest", []) if s not in vehicle_ids]
    if unknown:
        raise UserError(f"suggests unknown vehicles {unknown}", where=f"{path} [{raw.get('id')}]")
    return FictionalModel(id=raw["id"], make=raw["make"], model=raw["model"], year=int(raw["year"]),
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


__all__ = ["CATEGORIES", "DRIVETRAINS", "KNOWLEDGE_DIR", "LB_FT_TO_NM", "MAKER_CLAIM", "BudgetTier", "Concept",
           "FictionalModel",
           "Knowledge", "MaintenanceItem", "Vehicle", "load_knowledge"]
