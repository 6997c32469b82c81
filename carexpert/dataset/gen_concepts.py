"""Concept questions (engines, EVs, tech, safety, comparisons) and buying-advice topics.

Answers are built from the concept's own text (summary, explanation, pros, cons,
verdict), so the key terms evaluation scores are in the answer, and the record lists
exactly the ones it contains. "Which cars use X?" answers draw examples from the vehicle
table, so those records also name the vehicles among their facts.
"""

from __future__ import annotations

import random

from carexpert.dataset.asking import fill_question, frame, with_lead_in
from carexpert.dataset.records import Draft, Item, terms_in
from carexpert.dataset.text import a_or_an, capitalize_first, human_list
from carexpert.knowledge import DRIVETRAINS, Concept, Knowledge, Vehicle

MAX_EXAMPLES = 4


def concept_items(knowledge: Knowledge, category: str) -> list[Item]:
    """Every question kind each concept of ``category`` supports."""
    items = []
    for concept in knowledge.concepts:
        if concept.category == category:
            items += [Item(f"concept:{concept.id}:{kind}", _facts(knowledge, concept, kind),
                           _concept_builder(knowledge, concept, kind)) for kind in concept_kinds(concept)]
    return items


def buying_topic_items(knowledge: Knowledge) -> list[Item]:
    items = []
    for topic in knowledge.buying_topics:
        kinds = ["compare", "custom"] if topic.compare else ["explain", "checklist", "custom"]
        items += [Item(f"buying:{topic.id}:{kind}", (topic.fact_id,), _concept_builder(knowledge, topic, kind))
                  for kind in kinds if kind != "custom" or topic.questions]
    return items


def concept_kinds(concept: Concept) -> list[str]:
    if concept.compare:
        kinds = ["compare", "compare_short"]
    else:
        kinds = ["explain", "summary"]
        if concept.pros:
            kinds.append("pros")
        if concept.cons:
            kinds.append("cons")
        if concept.pros and concept.cons:
            kinds.append("pros_cons")
        if concept.examples:
            kinds.append("examples")
    if concept.questions:
        kinds.append("custom")
    return kinds


def concept_answer(rng: random.Random, knowledge: Knowledge, concept: Concept, kind: str) -> tuple[str, tuple[str, ...]]:
    """(answer text, extra fact ids) for one kind of question about a concept."""
    if kind in ("explain", "custom", "compare"):
        parts = [concept.summary, concept.explanation] if kind != "explain" or rng.random() < 0.7 else [concept.explanation]
        if concept.verdict:
            parts.append(concept.verdict)
        text = " ".join(parts)
        if concept.checklist and rng.random() < 0.5:
            text += "\n\n" + _checklist(rng, concept)
        return text, ()
    if kind == "summary":
        return concept.summary, ()
    if kind == "compare_short":
        return f"{concept.summary} {concept.verdict}".strip(), ()
    if kind == "checklist":
        return f"{concept.summary}\n\n{_checklist(rng, concept)}", ()
    if kind in ("pros", "cons", "pros_cons"):
        return _pros_cons(rng, concept, kind), ()
    if kind == "examples":
        # The same cars the concept's passage in the knowledge store lists, so the answer can be read from it.
        vehicles = example_vehicles(knowledge, concept)[:MAX_EXAMPLES]
        chosen = rng.sample(vehicles, len(vehicles))
        listed = human_list([f"the {v.name} with {example_descriptor(concept, v)}" for v in chosen])
        lead = rng.choice(["Examples from the cars I know include", "A few cars that use it:", "You'll find it in, for example,"])
        return f"{concept.summary} {lead} {listed}.", tuple(v.fact_id for v in chosen)
    raise ValueError(f"unknown concept question kind {kind!r}")


def example_vehicles(knowledge: Knowledge, concept: Concept) -> list[Vehicle]:
    """Vehicles in the table that illustrate the concept (its ``examples`` filter)."""
    found = []
    for vehicle in knowledge.vehicles:
        for column, accepted in concept.examples.items():
            if column == "engine_contains":
                if any(text in vehicle.engine for text in accepted):
                    found.append(vehicle)
            elif getattr(vehicle, column) in accepted:
                found.append(vehicle)
    return found


def concept_question(rng: random.Random, knowledge: Knowledge, concept: Concept, kind: str) -> str:
    section = "buying_topic" if concept.category == "buying" and not concept.compare else "concept"
    if kind == "custom":
        return rng.choice(concept.questions)
    if concept.compare:
        items = human_list(list(concept.compare))
        pattern = rng.choice(knowledge.questions["concept"][kind])
        return fill_question(pattern, {"items": items, "Items": capitalize_first(items)})
    values = {"topic": concept.topic, "is": "are" if concept.plural else "is",
              "does": "do" if concept.plural else "does"}
    return fill_question(rng.choice(knowledge.questions[section][kind]), values)


def _concept_builder(knowledge: Knowledge, concept: Concept, kind: str):
    def build(rng: random.Random) -> Draft:
        body, extra_facts = concept_answer(rng, knowledge, concept, kind)
        style = knowledge.answers["style"]
        output = frame(rng, body, style["openers"], style["concept_closers"] if concept.category != "buying" else ())
        instruction = with_lead_in(rng, concept_question(rng, knowledge, concept, kind), knowledge.questions["framing"])
        return Draft(instruction, output, kind, (concept.fact_id, *extra_facts),
                     key_terms=terms_in(output, concept.key_terms))
    return build


def _facts(knowledge: Knowledge, concept: Concept, kind: str) -> tuple[str, ...]:
    if kind == "examples":
        return (concept.fact_id, *(v.fact_id for v in example_vehicles(knowledge, concept)[:MAX_EXAMPLES]))
    return (concept.fact_id,)


def example_descriptor(concept: Concept, vehicle: Vehicle) -> str:
    """What the example shows: 'all-wheel drive', 'a CVT', 'a 2.0-liter turbocharged inline-four'."""
    columns = set(concept.examples)
    if "drivetrain" in columns:
        return DRIVETRAINS[vehicle.drivetrain]
    if "transmission_type" in columns:
        return a_or_an(vehicle.transmission)
    return a_or_an(vehicle.engine)


def _pros_cons(rng: random.Random, concept: Concept, kind: str) -> str:
    bullets = rng.random() < 0.5
    parts = [concept.summary] if kind == "pros_cons" or rng.random() < 0.5 else []
    for label, entries in (("Pros", concept.pros), ("Cons", concept.cons)):
        if kind != "pros_cons" and label.lower() != kind:
            continue
        if bullets:
            parts.append(f"{label}:\n" + "\n".join(f"- {capitalize_first(e)}" for e in entries))
        else:
            lead = rng.choice(["On the plus side:", "The advantages:"]) if label == "Pros" else \
                rng.choice(["On the downside:", "The trade-offs:"])
            parts.append(f"{lead} " + "; ".join(entries) + ".")
    return ("\n\n" if bullets else " ").join(parts)


def _checklist(rng: random.Random, concept: Concept) -> str:
    lead = rng.choice(["A quick checklist:", "Practical steps:", "What to do:"])
    return lead + "\n" + "\n".join(f"- {capitalize_first(step)}" for step in concept.checklist)
