"""The knowledge tables as typed records: vehicles, concepts, maintenance items, budget tiers.

Only data and the vocabularies a row is checked against live here; reading the files is
``carexpert.knowledge.loading`` and the searchable store is ``carexpert.knowledge.store``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NUMERIC_COLUMNS = ("cylinders", "hp", "torque_lb_ft", "torque_nm", "zero_to_sixty_s", "curb_weight_lb",
            "mpg_combined", "ev_range_mi", "msrp_usd")
# The columns of vehicles.csv (and of any vehicle rows a user imports), in file order.
VEHICLE_COLUMNS = ("id", "make", "model", "model_year", "trim", "segment", "body", "drivetrain", "powertrain",
                   "engine", "cylinders", "induction", "transmission", "transmission_type", "hp", "torque_lb_ft",
                   "torque_nm", "zero_to_sixty_s", "zero_to_sixty_source", "curb_weight_lb", "mpg_combined",
                   "ev_range_mi", "msrp_usd")
REQUIRED_TEXT_COLUMNS = ("id", "make", "model", "model_year", "trim", "segment", "body", "drivetrain", "powertrain",
                         "engine", "induction", "transmission", "transmission_type")


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


@dataclass(frozen=True)
class Passage:
    """One retrievable passage of the knowledge store."""

    id: str     # a vehicle: its id in vehicles.csv; others: "concept:<id>", "maintenance:<id>", "buying:<id>", "note:...",
                # "derived:compare:<idA>:<idB>", "derived:fuel:<id>"
    kind: str   # "vehicle", "concept", "maintenance", "buying", "note" or "derived" (computed for one question)
    title: str  # "2024 Toyota Camry LE", "Turbocharger", ...
    text: str   # what the model reads (begins with the title)
    # A derived passage: the ids of the vehicles its figures were computed from (a training context that
    # may not show one of them must not show this passage either). Empty for stored passages.
    sources: tuple[str, ...] = ()

    @property
    def fact_id(self) -> str:
        """The id that dataset records use in ``fact_ids`` ("vehicle:<id>" for a vehicle)."""
        return f"vehicle:{self.id}" if self.kind == "vehicle" else self.id
