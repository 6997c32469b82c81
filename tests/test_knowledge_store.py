"""The knowledge store and retrieval: build, import, atomic and incremental rebuilds, matching, the guard."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from carexpert.cli.main import main
from carexpert.errors import UserError
from carexpert.knowledge import VEHICLE_COLUMNS, load_knowledge
from carexpert.knowledge import store as store_module
from carexpert.knowledge.passages import vehicle_text
from carexpert.knowledge.store import KnowledgeStore, build_store, import_file, probe_fts5
from carexpert.retrieval import Retriever

CAMRY = ("2024 Toyota Camry LE (family sedan, front-wheel drive, gas). Engine: 2.5-liter inline-four, naturally "
         "aspirated, 4 cylinders; 8-speed automatic. Power: 203 hp (151 kW). Torque: 184 lb-ft (250 N·m). "
         "0-60 mph: not published. Curb weight: 3,310 lb (1,501 kg). Fuel economy: 32 mpg combined (7.4 L/100 km). "
         "Base MSRP: $26,420.")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "knowledge.sqlite"
    build_store(path)
    return path


@pytest.fixture(scope="module")
def retriever(built) -> Retriever:
    return Retriever(KnowledgeStore(built), max_context_tokens=10**9)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _row(**changes: object) -> dict[str, object]:
    camry = {c: getattr(load_knowledge().vehicle("toyota-camry-2024-le"), c) for c in VEHICLE_COLUMNS}
    camry.update(id="acme-roadster-2025-base", make="Acme", model="Roadster", model_year=2025, trim="Base",
                 hp=412, msrp_usd=61000)
    camry.update(changes)
    return {k: "" if v is None else v for k, v in camry.items()}


def _csv(path: Path, rows: list[dict[str, object]]) -> Path:
    lines = [",".join(VEHICLE_COLUMNS)] + [",".join(str(r[c]) for c in VEHICLE_COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- passages -----------------------------------------------------------------------------------------

def test_a_vehicle_passage_states_every_figure_with_its_units(retriever):
    assert retriever.passage("toyota-camry-2024-le").text == CAMRY
    ev = retriever.passage("kia-ev6-2022-wind").text
    assert "Range: 310 miles (499 km), EPA." in ev and "mpg" not in ev
    assert retriever.passage("vehicle:toyota-camry-2024-le").title == "2024 Toyota Camry LE"


def test_passage_figures_are_the_generators_figures():
    from carexpert.dataset.vehicle_text import vehicle_values

    knowledge = load_knowledge()
    for vehicle in knowledge.vehicles:
        text = vehicle_text(vehicle, knowledge.segments)
        values = vehicle_values(knowledge, vehicle)
        for key, unit in (("hp", "hp"), ("kw", "kW"), ("tq", "lb-ft"), ("nm", "N·m"), ("lb", "lb"), ("kg", "kg"),
                          ("mpg", "mpg"), ("l100", "L/100 km"), ("range", "miles"), ("range_km", "km")):
            if values[key] is not None:
                assert f"{values[key]} {unit}" in text, (vehicle.id, key)
        assert values["msrp"] is None or values["msrp"] in text


def test_concept_and_maintenance_passages_hold_what_their_answers_state(retriever):
    oil = retriever.passage("maintenance:oil-change").text
    assert "5,000 to 10,000 miles (8,000 to 16,100 km) or 6 to 12 months" in oil
    cvt = retriever.passage("concept:cvt").text
    assert "Examples: the 2024 Toyota Corolla LE with a CVT" in cvt and "Pros:" in cvt and "Cons:" in cvt
    assert retriever.passage("fictional:chevrolet-aurelion") is None


# -- build: incremental and atomic --------------------------------------------------------------------

def test_an_unchanged_store_is_kept_and_a_changed_source_rebuilt(tmp_path, monkeypatch):
    path = tmp_path / "kb.sqlite"
    assert build_store(path) == {"builtin": "built"}
    before = _digest(path)
    assert build_store(path) == {"builtin": "kept"} and _digest(path) == before
    notes = tmp_path / "garage.md"
    notes.write_text("# Winter tires\n\nFit winter tires below 7 °C (45 °F).\n", encoding="utf-8")
    import_file(path, notes)
    monkeypatch.setattr(store_module, "builtin_hash", lambda directory=None: "changed tables")
    assert build_store(path) == {"builtin": "built", "garage.md": "kept"}
    assert KnowledgeStore(path).passage("note:garage:1") is not None
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_build_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "kb.sqlite"
    build_store(path)
    before = _digest(path)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_module, "builtin_hash", lambda directory=None: "changed tables")
    monkeypatch.setattr(store_module, "_insert_source", broken)
    with pytest.raises(RuntimeError):
        build_store(path)
    assert _digest(path) == before and not list(tmp_path.glob(".*.tmp"))


def test_the_fts5_probe_says_plainly_what_is_missing(monkeypatch, tmp_path):
    real_connect = sqlite3.connect

    class NoFts:
        def __init__(self, *args, **kwargs):
            self.inner = real_connect(*args, **kwargs)

        def execute(self, sql, *args):
            if "fts5" in sql.lower() or "bm25" in sql.lower():
                raise sqlite3.OperationalError("no such module: fts5")
            return self.inner.execute(sql, *args)

        def close(self):
            self.inner.close()

    monkeypatch.setattr(store_module.sqlite3, "connect", NoFts)
    with pytest.raises(UserError, match="lacks the FTS5 full-text extension"):
        probe_fts5()
    monkeypatch.chdir(tmp_path)
    assert main(["kb", "build"]) == 2


# -- import -------------------------------------------------------------------------------------------

def test_imported_vehicle_rows_answer_questions_about_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rows = _csv(tmp_path / "fleet.csv", [_row()])
    rows.write_bytes(b"\xef\xbb\xbf" + rows.read_bytes())  # saved by a spreadsheet, with a byte-order mark
    assert main(["kb", "import", str(rows)]) == 0
    assert main(["kb", "search", "How much horsepower does the 2025 Acme Roadster make?", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out.split("\n", 2)[-1])
    assert hits[0]["id"] == "acme-roadster-2025-base" and "412 hp (307 kW)" in hits[0]["text"]
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps(_row(id="acme-coupe-2025-base", model="Coupe", hp=300)) + "\n", encoding="utf-8")
    assert main(["kb", "import", str(jsonl)]) == 0
    retriever = Retriever(KnowledgeStore(tmp_path / "data" / "knowledge.sqlite"))
    assert retriever.retrieve("Acme Coupe 0-60?").hits[0].passage.id == "acme-coupe-2025-base"
    assert main(["kb", "remove", "fleet.csv"]) == 0 and main(["kb", "remove", "fleet.csv"]) == 2
    assert KnowledgeStore(tmp_path / "data" / "knowledge.sqlite").passage("acme-roadster-2025-base") is None


def test_bad_rows_are_reported_with_their_lines_and_nothing_is_imported(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["kb", "build"]) == 0
    store = tmp_path / "data" / "knowledge.sqlite"
    before = _digest(store)
    bad = _csv(tmp_path / "bad.csv", [_row(), _row(id="acme-b-2025-base", hp="lots"), _row(id="acme-c-2025-base"),
                                      _row(id="acme-d-2025-base", segment="spaceship")])
    capsys.readouterr()
    assert main(["kb", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:3" in err and "hp must be a number" in err and "bad.csv:5" in err and "segment" in err
    assert "bad.csv:2" not in err and "Traceback" not in err
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(json.dumps(_row()) + "\n{not json\n", encoding="utf-8")
    assert main(["kb", "import", str(jsonl)]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    clash = _csv(tmp_path / "clash.csv", [_row(id="toyota-camry-2024-le")])
    assert main(["kb", "import", str(clash)]) == 2
    assert "already in the store" in capsys.readouterr().err
    assert _digest(store) == before


def test_notes_are_split_into_passages_at_headings(tmp_path):
    path = tmp_path / "kb.sqlite"
    notes = tmp_path / "My Fleet Notes.md"
    notes.write_text("# Van 12\n\nThe van's tire pressure is 55 psi front.\n\n## Service\n\n"
                     "Van 12 gets its oil changed every 7,500 miles at the depot.\n", encoding="utf-8")
    _, count = import_file(path, notes)
    assert count == 2
    retriever = Retriever(KnowledgeStore(path))
    hit = retriever.retrieve("How often does the depot change the oil in van 12?").hits[0]
    assert hit.passage.kind == "note" and hit.passage.id == "note:my-fleet-notes:2" and "7,500 miles" in hit.passage.text


# -- matching -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("question, expected", [
    ("2024 camry le horsepower", ["toyota-camry-2024-le"]),
    ("How much torque does the F150 make?", ["ford-f-150-2018-xl"]),
    ("Is the Miata fun to drive?", ["mazda-mx-5-miata-2019-sport"]),
    ("Vette 0-60?", ["chevrolet-corvette-2020-stingray-1lt"]),
    ("Chevy Silverado towing", ["chevrolet-silverado-1500-2024-wt"]),
    ("VW Tiguan fuel economy", ["volkswagen-tiguan-2022-s"]),
    ("Merc C300 horsepower", ["mercedes-benz-c-300-2022"]),
    ("XC90 B5 curb weight", ["volvo-xc90-2023-b5"]),
    ("How far does the 2022 EV6 Wind go?", ["kia-ev6-2022-wind"]),
    ("How much does the Camery weigh?", ["toyota-camry-2024-le"]),
    ("Toyta Corola mpg", ["toyota-corolla-2024-le"]),
    ("What's the torque of the 2019 Ram 1500?", ["ram-1500-2019-tradesman"]),
    ("2024 Ford Mustang EcoBoost (fastback) hp", ["ford-mustang-2024-ecoboost"]),
    ("2024 Mustang GT torque", ["ford-mustang-2024-gt"]),
    ("How quick is the 2024 Camry Hybrid LE?", ["toyota-camry-hybrid-2024-le"]),
    ("Compare the Honda Civic and the Toyota Corolla", ["honda-civic-2022-lx", "toyota-corolla-2024-le"]),
    ("Tesla Model 3 vs Model Y range", ["tesla-model-3-2024-rwd", "tesla-model-y-2023-long-range"]),
])
def test_named_vehicles_come_first_in_the_order_asked(retriever, question, expected):
    result = retriever.retrieve(question, k=3)
    assert [h.passage.id for h in result.hits[:len(expected)]] == expected
    assert all(h.how == "entity" for h in result.hits[:len(expected)]) and result.unknown is None


def test_a_question_about_a_cars_gearbox_brings_the_concept_that_explains_it(retriever):
    ids = [h.passage.id for h in retriever.retrieve("What transmission does the 2020 Outback use?").hits]
    assert ids[:2] == ["subaru-outback-2020-base", "concept:cvt"]


@pytest.mark.parametrize("question, named", [
    ("How much horsepower does the 2024 Toyota Zephyr GT make?", "2024 Toyota Zephyr GT"),
    ("Chevrolet Aurelion specs", "Chevrolet Aurelion"),
    ("Tell me about the Chevy Aurelion", "Chevy Aurelion"),
    ("What's the range of the Tesla Model V?", "Tesla Model V"),
    ("Is the BMW X11 fast?", "BMW X11"),
    ("What is the torque of the Veltron Aero GT?", "Veltron Aero GT"),
    ("How fast is the 2023 Kestrel Motors Arrow S?", "2023 Kestrel Motors Arrow S"),
    # the name stops where the sentence does, not at the next capitalized word
    ("I'm deciding between the 2022 CX-5 2.5 S and the 2023 Mazda Solstra. Thoughts?", "2023 Mazda Solstra"),
    ("I'm deciding between the 2023 Cadillac Lyriq and the 2024 Cadillac Solenne. Thoughts?", "2024 Cadillac Solenne"),
    ("Is the Veltron Aero GT, Honestly, any quicker?", "Veltron Aero GT"),
])
def test_made_up_models_are_flagged_with_real_suggestions(retriever, question, named):
    result = retriever.retrieve(question)
    assert result.unknown is not None and result.unknown.named == named
    assert result.refusal.startswith(f"I have no record of the {named}")
    make = named.split()[-2] if "Chevy" not in named else "Chevrolet"
    if make in ("Toyota", "Chevrolet", "Tesla", "BMW"):
        assert result.unknown.suggestions and all(make in p.title for p in result.unknown.suggestions)


@pytest.mark.parametrize("question", [
    "What Toyota is best for families?", "Are Toyota hybrids reliable?", "Should I get a Honda SUV?",
    "Is Toyota Safety Sense any good?", "Which is better, Apple CarPlay or Android Auto?",
    "Is my 2019 Toyota SUV due for service?", "Does Subaru make a good car?", "What's the best 2023 SUV?",
    "Is the Bridgestone Blizzak good in snow?", "What is the Kelley Blue Book value of my car?", "Is Mobil 1 oil good?",
    "Are Michelin Pilot Sport 4S tires good?", "How do I use Tesla Supercharger stations?",
])
def test_generic_words_are_not_unknown_vehicles(retriever, question):
    result = retriever.retrieve(question)
    assert result.unknown is None and not [h for h in result.hits if h.how == "entity"]


def test_a_comparison_with_a_made_up_model_keeps_the_real_one(retriever):
    result = retriever.retrieve("Which has more horsepower, the Subaru Halcyon or the 2020 Outback?")
    assert result.unknown is not None and result.unknown.named == "Subaru Halcyon"
    assert result.hits[0].passage.id == "subaru-outback-2020-base"


# -- limits and the CLI -------------------------------------------------------------------------------

def test_retrieval_keeps_to_k_and_the_token_budget(built):
    store = KnowledgeStore(built)
    tight = Retriever(store, top_k=3, max_context_tokens=150, count_tokens=lambda text: len(text.split()))
    hits = tight.retrieve("Compare the Honda Civic and the Toyota Corolla").hits
    assert [h.passage.id for h in hits] == ["honda-civic-2022-lx"] or sum(len(h.passage.text.split()) for h in hits) <= 150
    assert len(Retriever(store, top_k=2, max_context_tokens=10**9).retrieve("What is a turbocharger?").hits) == 2
    strict = Retriever(store, min_score=1e6, max_context_tokens=10**9)
    assert [h.how for h in strict.retrieve("2024 Camry LE torque").hits] == ["entity"]


def test_kb_search_json_lists_the_camry_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["kb", "search", "2024 camry le horsepower", "--json", "-k", "2"]) == 0
    out = capsys.readouterr().out
    hits = json.loads(out[out.index("["):])
    assert hits[0]["id"] == "toyota-camry-2024-le" and len(hits) == 2
    assert set(hits[0]) >= {"id", "kind", "score", "text"} and hits[0]["score"] > hits[1]["score"]
    assert main(["kb", "show", "concept:turbocharger"]) == 0 and "turbine" in capsys.readouterr().out
    assert main(["kb", "show", "no-such-car"]) == 2
    assert main(["kb", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["by_kind"]["vehicle"] == len(load_knowledge().vehicles)


# -- the matcher's yardstick on the builtin data ----------------------------------------------------------

def test_recall_and_the_guard_on_every_builtin_record(retriever):
    from carexpert.config import Config
    from carexpert.dataset import build_from_config
    from carexpert.knowledge.recall import measure

    built = build_from_config(Config())
    records = [r for split in built.splits.values() for r in split]
    report = measure(retriever, records)
    shares = report.shares()
    assert shares["vehicle_found"] >= 0.99, report.misses[:10]
    assert shares["found"] >= 0.95, report.misses_by_kind
    assert shares["refusal_flagged"] >= 0.95, report.missed_refusals[:10]
    assert shares["false_flags"] <= 0.01, report.false_flags[:10]


# -- loading the builtin tables: a bad entry is a UserError naming the file and the entry ----------------

def _copy_tables(tmp_path: Path) -> Path:
    import shutil

    from carexpert.knowledge import KNOWLEDGE_DIR

    copy = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return copy


def test_a_toml_entry_missing_a_key_names_the_file_and_entry(tmp_path):
    copy = _copy_tables(tmp_path)
    path = copy / "maintenance.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index("neglect =", text.index('id = "oil-change"'))
    path.write_text(text[:start] + "# " + text[start:], encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_knowledge(str(copy))
    assert "maintenance.toml [oil-change]" in caught.value.where and "neglect" in caught.value.message


def test_a_vehicles_csv_without_a_column_is_refused_at_its_header(tmp_path):
    copy = _copy_tables(tmp_path)
    path = copy / "vehicles.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:-1]) for line in lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_knowledge(str(copy))
    assert caught.value.where.endswith("vehicles.csv:1") and "msrp_usd" in caught.value.render()


def test_a_fifo_or_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import os

    from carexpert.knowledge import sources

    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        sources.read_import(fifo)  # would block forever if it were opened for a plain read
    big = tmp_path / "notes.md"
    big.write_text("# fleet\n" + "x" * 64, encoding="utf-8")
    monkeypatch.setattr(sources, "IMPORT_LIMIT", 32)
    with pytest.raises(UserError, match="more than"):
        sources.read_import(big)
