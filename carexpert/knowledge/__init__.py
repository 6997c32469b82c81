"""The curated automotive knowledge, loaded from the data files beside this module.

Facts live in data files (CSV and TOML) so they can be reviewed and corrected without
touching code, and every table carries a source note in ``sources.toml``. Loading
validates the tables, so a typo (an unknown segment, torque in N·m that does not match
lb-ft, a key term the explanation never mentions) fails loudly instead of quietly
teaching the model something wrong.

Layout: ``types`` (the records), ``loading`` (files to checked records, every bad row a
``UserError`` with its file and line), ``passages`` (the text retrieval hands the model),
``entities`` (finding the vehicles a question names) and ``store`` (the SQLite full-text
store). This package re-exports the types and ``load_knowledge``; the store modules are
imported on demand so loading the tables stays light.
"""

from __future__ import annotations

from carexpert.knowledge.loading import load_knowledge, parse_vehicle, parse_vehicle_rows
from carexpert.knowledge.types import (
    CATEGORIES,
    DRIVETRAINS,
    INDUCTIONS,
    KNOWLEDGE_DIR,
    LB_FT_TO_NM,
    MAKER_CLAIM,
    POWERTRAINS,
    TRANSMISSION_TYPES,
    VEHICLE_COLUMNS,
    BudgetTier,
    Concept,
    FictionalModel,
    Knowledge,
    MaintenanceItem,
    Vehicle,
)

__all__ = ["CATEGORIES", "DRIVETRAINS", "INDUCTIONS", "KNOWLEDGE_DIR", "LB_FT_TO_NM", "MAKER_CLAIM", "POWERTRAINS",
           "TRANSMISSION_TYPES", "VEHICLE_COLUMNS", "BudgetTier", "Concept", "FictionalModel", "Knowledge",
           "MaintenanceItem", "Vehicle", "load_knowledge", "parse_vehicle", "parse_vehicle_rows"]
