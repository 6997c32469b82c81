"""The text of each retrievable passage: what the model reads in the prompt's Context section.

A 270M model is trained to copy figures from these passages, so the wording is fixed and
explicit: every figure in every unit a question may ask for, the unit written next to the
number, always in the same order, and "not published" where the table has no figure.
Figures are formatted by the same functions the dataset generator uses
(``carexpert.dataset.vehicle_text.vehicle_values``, ``carexpert.dataset.units``), so a figure
in a passage is character for character the figure in a training answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from carexpert.dataset import units
from carexpert.dataset.gen_concepts import MAX_EXAMPLES, example_descriptor, example_vehicles
from carexpert.dataset.gen_maintenance import KM_STEP
from carexpert.dataset.text import capitalize_first, human_list
from carexpert.knowledge.types import DRIVETRAINS, BudgetTier, Concept, Knowledge, MaintenanceItem, Passage, Vehicle

NOT_PUBLISHED = "not published"
BUDGET_ID = "buying:budget-tiers"
BUDGET_TITLE = "Budget tiers"
NOTE_WORDS = 120  # an imported note is cut into passages of at most about this many words


def vehicle_passage(vehicle: Vehicle, segments: Mapping[str, str]) -> Passage:
    """'2024 Toyota Camry LE (family sedan, front-wheel drive, gas). Engine: ... Base MSRP: $28,400.'"""
    return Passage(vehicle.id, "vehicle", vehicle.name, vehicle_text(vehicle, segments))


def vehicle_text(v: Vehicle, segments: Mapping[str, str]) -> str:
    segment = segments.get(v.segment, v.segment)
    kind = [segment] + ([v.body] if not segment.lower().endswith(v.body.lower()) else [])
    engine = [v.engine]
    if not v.is_electric:
        engine += [v.induction] + ([f"{v.cylinders} cylinders"] if v.cylinders else [])
    parts = [f"{v.name} ({', '.join([*kind, DRIVETRAINS[v.drivetrain], v.powertrain])}).",
             f"Engine: {', '.join(engine)}; {v.transmission}.",
             f"Power: {f'{v.hp} hp ({units.hp_to_kw(v.hp)} kW)' if v.hp else NOT_PUBLISHED}.",
             "Torque: " + (f"{v.torque_lb_ft} lb-ft ({units.fmt_int(v.torque_nm)} N·m)."
                           if v.torque_lb_ft and v.torque_nm else f"{NOT_PUBLISHED}."),
             f"0-60 mph: {zero_to_sixty_text(v)}.",
             "Curb weight: " + (f"{units.fmt_int(v.curb_weight_lb)} lb ({units.fmt_int(units.lb_to_kg(v.curb_weight_lb))} kg)."
                                if v.curb_weight_lb else f"{NOT_PUBLISHED}.")]
    if not v.is_electric:
        parts.append("Fuel economy: " + (f"{v.mpg_combined} mpg combined "
                                         f"({units.fmt_decimal(units.mpg_to_l100km(v.mpg_combined))} L/100 km)."
                                         if v.mpg_combined else f"{NOT_PUBLISHED}."))
    if v.ev_range_mi or v.is_electric:
        label = "Range" if v.is_electric else "Electric range"
        parts.append(f"{label}: " + (f"{v.ev_range_mi} miles ({units.fmt_int(units.miles_to_km(v.ev_range_mi))} km), EPA."
                                     if v.ev_range_mi else f"{NOT_PUBLISHED}."))
    parts.append(f"Base MSRP: {units.fmt_usd(v.msrp_usd) if v.msrp_usd else NOT_PUBLISHED}.")
    return " ".join(parts)


def zero_to_sixty_text(v: Vehicle) -> str:
    """'5.8 seconds (Toyota's claim)', '4.1 seconds (measured by Car and Driver)' or 'not published'."""
    if not v.zero_to_sixty_s:
        return NOT_PUBLISHED
    seconds = f"{units.fmt_decimal(v.zero_to_sixty_s)} seconds"
    return f"{seconds} ({v.make}'s claim)" if v.zero_to_sixty_is_claim else \
        f"{seconds} (measured by {v.zero_to_sixty_source})"


def concept_title(concept: Concept) -> str:
    if concept.compare:
        return capitalize_first(" vs ".join(concept.compare))
    return capitalize_first(re.sub(r"^(a|an|the) ", "", concept.topic))


def concept_passage(concept: Concept, knowledge: Knowledge | None = None,
                    examples: Sequence[Vehicle] | None = None) -> Passage:
    """Summary, explanation, pros, cons, verdict and checklist, then example vehicles from the table."""
    title = concept_title(concept)
    parts = [f"{title}: {concept.summary}", concept.explanation]
    if concept.pros:
        parts.append("Pros: " + "; ".join(concept.pros) + ".")
    if concept.cons:
        parts.append("Cons: " + "; ".join(concept.cons) + ".")
    if concept.verdict:
        parts.append(concept.verdict)
    if concept.checklist:
        parts.append("Checklist: " + "; ".join(concept.checklist) + ".")
    if examples is None and knowledge is not None and concept.examples:
        examples = example_vehicles(knowledge, concept)[:MAX_EXAMPLES]
    if examples:
        parts.append("Examples: " + human_list([f"the {v.name} with {example_descriptor(concept, v)}"
                                                for v in examples]) + ".")
    kind = "buying" if concept.category == "buying" else "concept"
    return Passage(concept.fact_id, kind, title, " ".join(p.strip() for p in parts if p.strip()))


def interval_text(entry: MaintenanceItem) -> str:
    """'Every 5,000 to 10,000 miles (8,000 to 16,100 km) or 6 to 12 months, whichever comes first.'"""
    from carexpert.dataset.gen_maintenance import _months

    parts = []
    if entry.miles:
        low, high = entry.miles
        parts.append(f"{units.fmt_int(low)} to {units.fmt_int(high)} miles "
                     f"({units.fmt_int(units.miles_to_km_rounded(low, KM_STEP))} to "
                     f"{units.fmt_int(units.miles_to_km_rounded(high, KM_STEP))} km)")
    if entry.months:
        parts.append(_months(entry.months))
    if not parts:
        return ""
    tail = ", whichever comes first" if len(parts) == 2 else ""
    return f"Interval: every {' or '.join(parts)}{tail}.".replace("every once", "once")


def maintenance_passage(entry: MaintenanceItem) -> Passage:
    title = capitalize_first(re.sub(r"^(a|an|the) ", "", entry.item))
    parts = [f"{title}: {interval_text(entry)}", entry.interval_note, entry.explanation,
             "Warning signs: " + "; ".join(entry.signs) + ".", f"If skipped: {entry.neglect}"]
    return Passage(entry.fact_id, "maintenance", title, " ".join(p.strip() for p in parts if p.strip()))


def budget_passage(topic: Concept | None, tiers: Sequence[BudgetTier]) -> Passage:
    """How to set a budget (the buying topic of that id) and the tiers' price bands.

    This is the stored passage; a question that names an amount gets ``budget_answer_passage``
    instead, with that tier's advice and the store's cars at or under the amount.
    """
    base = concept_passage(topic).text if topic is not None else ""
    bands = "Budget tiers: " + "; ".join(t.label for t in tiers) + "."
    return Passage(BUDGET_ID, "buying", concept_title(topic) if topic else BUDGET_TITLE, f"{base} {bands}".strip())


def search_keys(concept: Concept) -> str:
    """Words the full-text index weighs above the body: the topic, the things compared, the key terms."""
    return " ".join([concept.topic, *concept.compare, *concept.key_terms])


# Which concept explains a vehicle's drivetrain, powertrain and induction (its gearbox: transmission_concept).
POWERTRAIN_CONCEPTS = {"electric": "battery-electric-vehicle", "hybrid": "hybrid-vehicle",
                       "plug-in hybrid": "plug-in-hybrid", "mild hybrid": "mild-hybrid"}
INDUCTION_CONCEPTS = {"turbocharged": "turbocharger", "twin-turbocharged": "turbocharger",
                      "supercharged": "supercharger", "naturally aspirated": "naturally-aspirated"}


# Words by which a question asks about one of those aspects of a named vehicle.
LINK_WORDS = {
    "gearbox": {"transmission", "transmissions", "gearbox", "gear", "gears", "automatic", "manual", "cvt", "shift",
                "shifts", "stick", "dct", "dual-clutch", "ecvt"},
    "drivetrain": {"drivetrain", "wheels", "awd", "4wd", "fwd", "rwd", "all-wheel", "four-wheel", "front-wheel",
                   "rear-wheel", "4x4", "driven"},
    "powertrain": {"hybrid", "electric", "ev", "plug-in", "phev", "hev", "bev", "battery", "powertrain"},
    "induction": {"turbo", "turbocharged", "turbocharger", "supercharged", "supercharger", "aspirated", "boost"},
}


def vehicle_links(knowledge: Knowledge, vehicle: Vehicle) -> list[tuple[str, str]]:
    """(aspect, fact id) of the concepts that explain this vehicle's gearbox, drivetrain, powertrain, induction."""
    from carexpert.dataset.gen_vehicle_topics import DRIVETRAIN_CONCEPTS, transmission_concept

    known = {c.id for c in knowledge.concepts}
    gearbox = transmission_concept(knowledge, vehicle)
    links = [("gearbox", gearbox.fact_id)] if gearbox else []
    for aspect, concept_id in (("drivetrain", DRIVETRAIN_CONCEPTS.get(vehicle.drivetrain)),
                               ("powertrain", POWERTRAIN_CONCEPTS.get(vehicle.powertrain)),
                               ("induction", INDUCTION_CONCEPTS.get(vehicle.induction))):
        if concept_id in known:
            links.append((aspect, f"concept:{concept_id}"))
    return links


def budget_pick_text(vehicle: Vehicle, segments: Mapping[str, str]) -> str:
    """'the 2024 Toyota Camry LE (family sedan, $28,400, 203 hp, 32 mpg combined)', as budget answers list it."""
    economy = (f"{vehicle.mpg_combined} mpg combined" if vehicle.mpg_combined else
               f"{vehicle.ev_range_mi} miles of EPA range" if vehicle.ev_range_mi else None)
    details = ", ".join(x for x in (segments.get(vehicle.segment, vehicle.segment), units.fmt_usd(vehicle.msrp_usd or 0),
                                    f"{vehicle.hp} hp" if vehicle.hp else None, economy) if x)
    return f"the {vehicle.name} ({details})"


def budget_answer_passage(tier: BudgetTier, budget: int, segment_label: str | None, picks: Sequence[Vehicle],
                          segments: Mapping[str, str]) -> Passage:
    """The tier's advice and the store's vehicles at or under the budget, for one question."""
    label = segment_label or "new car"
    if picks:
        listed = f"{capitalize_first(label)} options with a base MSRP at or under {units.fmt_usd(budget)}: " + \
                 human_list([budget_pick_text(v, segments) for v in picks]) + "."
    else:
        listed = f"No {label} in the store has a base MSRP at or under {units.fmt_usd(budget)}."
    text = f"Budget {tier.label}: {tier.advice} {listed}"
    return Passage(BUDGET_ID, "buying", BUDGET_TITLE, text)


def note_passages(path: Path, text: str) -> list[Passage]:
    """A plain-text or markdown note cut at headings and blank lines into passages of about NOTE_WORDS words."""
    stem = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-") or "note"
    passages: list[Passage] = []
    for heading, paragraphs in _sections(text):
        title = heading or path.stem
        chunk: list[str] = []
        for paragraph in paragraphs:
            words = len(paragraph.split())
            if chunk and sum(len(c.split()) for c in chunk) + words > NOTE_WORDS:
                passages.append(_note(stem, len(passages) + 1, title, chunk))
                chunk = []
            chunk.append(paragraph)
        if chunk:
            passages.append(_note(stem, len(passages) + 1, title, chunk))
    return passages


def _note(stem: str, number: int, title: str, paragraphs: Iterable[str]) -> Passage:
    body = " ".join(paragraphs)
    return Passage(f"note:{stem}:{number}", "note", title, f"{title}: {body}" if title not in body[:len(title) + 5] else body)


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading path, paragraphs) in order: 'Van 12 / Service' for a '## Service' under '# Van 12'; a paragraph
    is the text between blank lines, joined onto one line, and a long one is cut at sentence ends."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    paragraph: list[str] = []
    path: list[tuple[int, str]] = []

    def flush() -> None:
        if paragraph:
            sections[-1][1].extend(_cut(" ".join(paragraph)))
            paragraph.clear()

    for raw in text.splitlines():
        line = raw.strip()
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*$", line)
        if heading:
            flush()
            level = len(heading.group(1))
            path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, heading.group(2).strip())]
            sections.append((" / ".join(name for _, name in path), []))
        elif not line:
            flush()
        else:
            paragraph.append(re.sub(r"^[-*+]\s+", "", line))
    flush()
    return [(h, p) for h, p in sections if p]


def _cut(paragraph: str) -> list[str]:
    """A paragraph longer than NOTE_WORDS as pieces of whole sentences."""
    if len(paragraph.split()) <= NOTE_WORDS:
        return [paragraph]
    pieces: list[str] = []
    current: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        if current and len(" ".join(current).split()) + len(sentence.split()) > NOTE_WORDS:
            pieces.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces
