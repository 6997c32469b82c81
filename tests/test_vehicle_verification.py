"""Vehicle-table provenance: the verification log agrees with vehicles.csv, and a 0-60 time says whose it is."""

from __future__ import annotations

import dataclasses
import random
import shutil
import tomllib

import pytest

from carexpert.dataset.gen_comparisons import compare_answer
from carexpert.dataset.gen_specs import spec_answer
from carexpert.dataset.vehicle_text import vehicle_values
from carexpert.errors import UserError
from carexpert.knowledge import KNOWLEDGE_DIR, MAKER_CLAIM, load_knowledge

NUMERIC_COLUMNS = {"hp", "torque_lb_ft", "torque_nm", "zero_to_sixty_s", "curb_weight_lb", "mpg_combined",
                   "ev_range_mi", "msrp_usd"}


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


@pytest.fixture(scope="module")
def log():
    with (KNOWLEDGE_DIR / "verification.toml").open("rb") as handle:
        return tomllib.load(handle)["vehicle"]


def test_every_logged_vehicle_exists_once_and_names_real_columns(knowledge, log):
    ids = [entry["id"] for entry in log]
    assert len(ids) == len(set(ids))
    for entry in log:
        knowledge.vehicle(entry["id"])
        named = set(entry.get("verified", [])) | set(entry.get("unconfirmed", []))
        named |= {change["field"] for change in entry.get("change", [])}
        assert named <= NUMERIC_COLUMNS, entry["id"]
        assert not set(entry.get("verified", [])) & set(entry.get("unconfirmed", [])), entry["id"]


def test_every_verified_or_changed_cell_has_a_source_and_the_table_holds_the_change(knowledge, log):
    for entry in log:
        vehicle = knowledge.vehicle(entry["id"])
        supported = set()
        for source in entry.get("source", []):
            assert source["name"].strip() and source["title"].strip() and source["url"].startswith("http")
            supported |= set(source["supports"])
        changed = {change["field"] for change in entry.get("change", [])}
        assert set(entry.get("verified", [])) | changed <= supported, entry["id"]
        for change in entry.get("change", []):
            assert getattr(vehicle, change["field"]) == change["new"], (entry["id"], change)
            assert change["old"] != change["new"]
        for column in entry.get("verified", []):
            assert getattr(vehicle, column) is not None, (entry["id"], column)


def test_a_measured_zero_to_sixty_is_logged_with_its_source(knowledge, log):
    by_id = {entry["id"]: entry for entry in log}
    for vehicle in knowledge.vehicles:
        if vehicle.zero_to_sixty_s is not None and not vehicle.zero_to_sixty_is_claim:
            sources = by_id[vehicle.id].get("source", [])
            assert any("zero_to_sixty_s" in s["supports"] for s in sources), vehicle.id


def test_loader_requires_a_source_with_every_zero_to_sixty(tmp_path):
    copy = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    csv_path = copy / "vehicles.csv"
    text = csv_path.read_text(encoding="utf-8")
    broken = text.replace(",6.1,maker,", ",6.1,,", 1)
    assert broken != text
    csv_path.write_text(broken, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_knowledge(str(copy))
    assert "zero_to_sixty_source" in " ".join(caught.value.details)


def test_a_magazine_time_is_attributed_to_the_magazine_and_a_claim_to_the_maker(knowledge):
    claimed = knowledge.vehicle("toyota-gr86-2022-base")
    assert claimed.zero_to_sixty_source == MAKER_CLAIM
    tested = dataclasses.replace(knowledge.vehicle("nissan-z-2023-sport"), zero_to_sixty_s=4.5,
                                 zero_to_sixty_source="Car and Driver")
    values = vehicle_values(knowledge, tested)
    assert values["t60"] is None and (values["t60_test"], values["tester"]) == ("4.5", "Car and Driver")
    for seed in range(8):
        answer = spec_answer(random.Random(seed), knowledge, tested, "zero_to_sixty")
        assert "Car and Driver" in answer and "4.5" in answer and "Nissan quotes" not in answer
        claim = spec_answer(random.Random(seed), knowledge, claimed, "zero_to_sixty")
        assert "Toyota" in claim and "6.1" in claim and "Car and Driver" not in claim
    overall = compare_answer(random.Random(0), claimed, tested, "overall")
    assert "6.1 seconds for the GR86 (Toyota's claim)" in overall
    assert "4.5 seconds for the Nissan Z (Car and Driver's measurement)" in overall
    single = compare_answer(random.Random(0), claimed, tested, "acceleration")
    assert "Toyota's claim" in single and "Car and Driver's measurement" in single
