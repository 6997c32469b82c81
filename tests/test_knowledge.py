"""The knowledge tables: enough real vehicles and concepts, internally consistent, sourced."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from carexpert.errors import UserError
from carexpert.knowledge import CATEGORIES, KNOWLEDGE_DIR, LB_FT_TO_NM, load_knowledge


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def test_at_least_80_vehicles_across_the_required_segments(knowledge):
    assert len(knowledge.vehicles) >= 80
    segments = Counter(v.segment for v in knowledge.vehicles)
    for segment in ("economy", "family_sedan", "compact_suv", "midsize_suv", "pickup", "sports", "luxury",
                    "hybrid", "ev"):
        assert segments[segment] >= 5 or (segment == "family_sedan" and segments[segment] >= 4), segment
    names = {(v.make, v.model) for v in knowledge.vehicles}
    assert ("Toyota", "Camry") in names and ("Honda", "Accord") in names


def test_every_vehicle_has_the_core_columns_and_consistent_units(knowledge):
    for v in knowledge.vehicles:
        assert v.make and v.model and v.trim and v.body and v.engine and v.transmission, v.id
        assert 1990 < v.model_year < 2030
        assert v.mpg_combined is not None or v.ev_range_mi is not None or v.segment in {"pickup", "sports", "luxury",
                                                                                        "midsize_suv"}, v.id
        if v.torque_lb_ft is not None:
            assert abs(v.torque_nm - v.torque_lb_ft * LB_FT_TO_NM) <= max(2, 0.01 * v.torque_nm), v.id
        if v.is_electric:
            assert v.ev_range_mi and v.mpg_combined is None and v.cylinders is None
        if v.hp is not None:
            assert 60 <= v.hp <= 1100, v.id
        if v.zero_to_sixty_s is not None:
            assert 2.0 <= v.zero_to_sixty_s <= 15.0
    assert sum(v.hp is not None for v in knowledge.vehicles) >= 80
    assert sum(v.msrp_usd is not None for v in knowledge.vehicles) >= 70


def test_published_figures_for_the_showcase_cars(knowledge):
    camry = knowledge.vehicle("toyota-camry-2024-le")
    accord = knowledge.vehicle("honda-accord-2023-lx")
    assert (camry.hp, camry.torque_lb_ft, camry.mpg_combined) == (203, 184, 32)
    assert (accord.hp, accord.torque_lb_ft, accord.torque_nm, accord.mpg_combined, accord.msrp_usd) == \
        (192, 192, 260, 32, 27295)


def test_at_least_60_concepts_with_key_terms_in_their_text(knowledge):
    assert len(knowledge.concepts) >= 60
    for concept in (*knowledge.concepts, *knowledge.buying_topics):
        text = " ".join([concept.summary, concept.explanation, *concept.checklist]).lower()
        assert concept.key_terms, concept.id
        assert all(term.lower() in text for term in concept.key_terms), concept.id
        assert concept.category in CATEGORIES


def test_required_concepts_exist(knowledge):
    ids = {c.id for c in knowledge.concepts}
    for required in ("turbo-vs-supercharger", "transmission-types", "torque-vectoring", "regenerative-braking",
                     "direct-injection", "atkinson-cycle", "diesel-engine", "series-hybrid", "parallel-hybrid",
                     "power-split-hybrid", "ev-battery", "level-1-charging", "level-2-charging", "dc-fast-charging",
                     "nhtsa-ratings", "iihs-ratings", "front-wheel-drive", "rear-wheel-drive", "all-wheel-drive",
                     "four-wheel-drive", "automatic-emergency-braking", "adaptive-cruise-control",
                     "lane-keeping-assist", "blind-spot-monitoring"):
        assert required in ids, required
    by_category = Counter(c.category for c in knowledge.concepts)
    assert by_category["safety"] >= 15 and by_category["advanced_tech"] >= 15


def test_maintenance_buying_and_fictional_tables(knowledge):
    oil = knowledge.maintenance_item("oil-change")
    assert oil.miles == (5000, 10000)
    assert len(knowledge.maintenance) >= 15 and all(m.key_terms for m in knowledge.maintenance)
    topics = {t.id for t in knowledge.buying_topics}
    assert {"budget-tiers", "new-used-cpo", "certified-pre-owned", "leasing", "total-cost-of-ownership"} <= topics
    real = {(v.make.lower(), v.model.lower()) for v in knowledge.vehicles}
    assert all((m.make.lower(), m.model.lower()) not in real for m in knowledge.fictional)


def test_every_table_has_a_source_note(knowledge):
    for table in ("vehicles", "concepts", "maintenance", "buying", "fictional", "showcase"):
        assert len(knowledge.sources[table]["note"]) > 40, table


def test_a_bad_vehicle_row_is_refused_with_its_line(tmp_path):
    copy = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    lines = (copy / "vehicles.csv").read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace(",151,205,", ",151,300,")  # Corolla torque: 300 N·m is not 151 lb-ft
    (copy / "vehicles.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_knowledge(str(copy))
    assert "vehicles.csv:2" in caught.value.where and "torque_nm" in caught.value.render()


def test_a_key_term_missing_from_the_text_is_refused(tmp_path):
    copy = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = copy / "concepts.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('"wastegate"]', '"flux capacitor"]'), encoding="utf-8")
    with pytest.raises(UserError, match="key terms"):
        load_knowledge(str(copy))
