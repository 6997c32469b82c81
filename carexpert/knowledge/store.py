"""The knowledge store: one SQLite file with every passage, full-text indexed (FTS5, bm25).

Sources are the builtin tables (one source, hashed with the passage code so a wording change
rebuilds it) and each file the user imported (kept inside the store, so the store does not
depend on the file staying where it was). ``build`` compares content hashes per source and
redoes only the sources that changed; every write goes to a temporary copy that replaces the
store in one ``os.replace``, so a reader never sees half a build and a failed import leaves
the store as it was. Standard library only: no network, no model download.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from carexpert.errors import UserError
from carexpert.knowledge.entities import TOKEN, VehicleKey
from carexpert.knowledge.sources import (
    BUILTIN,
    Source,
    parse_vehicle_source,
    read_import,
)
from carexpert.knowledge.types import KNOWLEDGE_DIR, VEHICLE_COLUMNS, Knowledge, Passage, Vehicle

SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sources (name TEXT PRIMARY KEY, kind TEXT NOT NULL, hash TEXT NOT NULL, content TEXT NOT NULL);
CREATE TABLE passages (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
                       text TEXT NOT NULL, source TEXT NOT NULL, keys TEXT NOT NULL DEFAULT '');
CREATE TABLE vehicles (id TEXT PRIMARY KEY, make TEXT NOT NULL, model TEXT NOT NULL, year INTEGER NOT NULL,
                       trim TEXT NOT NULL, segment TEXT NOT NULL, msrp INTEGER, ord INTEGER NOT NULL,
                       row TEXT NOT NULL, source TEXT NOT NULL);
CREATE INDEX vehicles_by_price ON vehicles (segment, msrp);
CREATE INDEX vehicles_by_segment ON vehicles (segment);
CREATE TABLE links (vehicle TEXT NOT NULL, aspect TEXT NOT NULL, passage TEXT NOT NULL, source TEXT NOT NULL);
CREATE INDEX links_by_vehicle ON links (vehicle);
CREATE TABLE words (word TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE VIRTUAL TABLE fts_topics USING fts5 (title, keys, text, content='passages', content_rowid='rowid',
                                             tokenize='porter unicode61');
CREATE VIRTUAL TABLE fts_vehicles USING fts5 (title, keys, text, content='passages', content_rowid='rowid',
                                               tokenize='porter unicode61');
"""


def probe_fts5() -> None:
    """Fail plainly when this Python's sqlite3 was built without FTS5 (the store needs it for ranking)."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
        connection.execute("SELECT bm25(probe) FROM probe WHERE probe MATCH 'x'").fetchall()
    except sqlite3.OperationalError as error:
        raise UserError(
            f"this Python's sqlite3 module (SQLite {sqlite3.sqlite_version}) lacks the FTS5 full-text extension "
            f"({error}), which the knowledge store needs",
            fix="use a Python whose sqlite3 is built with FTS5 (python.org, conda and most Linux distribution "
                "builds are), or turn retrieval off with [retrieval] enabled = false") from None
    finally:
        connection.close()


def builtin_hash(directory: Path = KNOWLEDGE_DIR) -> str:
    """Hash of the builtin tables plus the code that words passages, so either change rebuilds them."""
    digest = hashlib.sha256(f"schema {SCHEMA_VERSION}".encode())
    code = Path(__file__).parent
    for path in sorted([*directory.glob("*.csv"), *directory.glob("*.toml"), code / "passages.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class KnowledgeStore:
    """A read handle on the store file; building and importing are the module functions below."""

    def __init__(self, path: str | os.PathLike):
        probe_fts5()
        self.path = Path(path)
        if not self.path.exists():
            raise UserError("the knowledge store does not exist yet", where=str(self.path),
                            fix="run 'carexpert kb build'")
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as error:
            raise UserError(f"not a knowledge store ({error})", where=str(self.path),
                            fix="delete the file and run 'carexpert kb build'") from None
        if not version or int(version[0]) != SCHEMA_VERSION:
            raise UserError("the knowledge store was written by another version of carexpert", where=str(self.path),
                            fix="run 'carexpert kb build' to rebuild it")

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def passage(self, passage_id: str) -> Passage | None:
        """A passage by id: a vehicle's id in vehicles.csv, or 'concept:turbocharger', 'note:...', ..."""
        if passage_id.startswith("vehicle:"):
            passage_id = passage_id[len("vehicle:"):]
        rows = self._rows("SELECT id, kind, title, text FROM passages WHERE id = ?", (passage_id,))
        return Passage(*rows[0]) if rows else None

    def passages(self, ids: Iterable[str]) -> dict[str, Passage]:
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return {row[0]: Passage(*row) for row in
                self._rows(f"SELECT id, kind, title, text FROM passages WHERE id IN ({marks})", ids)}

    def search(self, query_terms: Sequence[str], limit: int, vehicles: bool = False) -> list[tuple[Passage, float]]:
        """bm25 full-text ranking over topic passages (or vehicle passages): (passage, score), best first."""
        terms = [t for t in query_terms if t]
        if not terms or limit <= 0:
            return []
        table = "fts_vehicles" if vehicles else "fts_topics"
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self._rows(
            f"SELECT p.id, p.kind, p.title, p.text, bm25({table}, 4.0, 2.0, 1.0) AS rank FROM {table} "
            f"JOIN passages p ON p.rowid = {table}.rowid WHERE {table} MATCH ? ORDER BY rank LIMIT ?", (match, limit))
        return [(Passage(*row[:4]), -float(row[4])) for row in rows]

    def vehicle_keys(self) -> list[VehicleKey]:
        return [VehicleKey(*row) for row in
                self._rows("SELECT id, make, model, year, trim, segment, ord FROM vehicles ORDER BY ord")]

    def vehicles(self, ids: Iterable[str]) -> list[Vehicle]:
        ids = list(ids)
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT row FROM vehicles WHERE id IN ({marks}) ORDER BY ord", ids) if ids else []
        return [Vehicle(**json.loads(row[0])) for row in rows]

    def priced_vehicles(self, budget: int, segment: str | None, limit: int) -> list[Vehicle]:
        """The priciest vehicles at or under the budget: ``limit`` of the segment, or, with no segment, the
        priciest of each segment (at most ``limit`` segments, priciest first). Index seeks, so fast at any size."""
        if segment:
            rows = self._rows("SELECT row FROM vehicles WHERE segment = ? AND msrp IS NOT NULL AND msrp <= ? "
                              "ORDER BY msrp DESC, id LIMIT ?", (segment, budget, limit))
        else:
            rows = []
            for (name,) in self._rows("SELECT DISTINCT segment FROM vehicles"):
                rows += self._rows("SELECT row, msrp FROM vehicles WHERE segment = ? AND msrp IS NOT NULL AND msrp <= ? "
                                   "ORDER BY msrp DESC, id LIMIT 1", (name, budget))
            rows = sorted(rows, key=lambda row: -row[1])[:limit]
        return [Vehicle(**json.loads(row[0])) for row in rows]

    def links(self, vehicle_ids: Iterable[str]) -> list[tuple[str, str]]:
        """(aspect, passage id) of the concepts that explain these vehicles' gearbox, drivetrain, powertrain, induction."""
        ids = list(vehicle_ids)
        marks = ",".join("?" * len(ids))
        return [tuple(row) for row in self._rows(f"SELECT aspect, passage FROM links WHERE vehicle IN ({marks})", ids)] \
            if ids else []

    def topic_titles(self) -> list[str]:
        return [row[0] for row in self._rows("SELECT title FROM passages WHERE kind != 'vehicle'")]

    def words(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT word FROM words")}

    def sources(self) -> list[tuple[str, str, str]]:
        """(name, kind, hash) of each source."""
        return [tuple(r) for r in self._rows("SELECT name, kind, hash FROM sources ORDER BY name = 'builtin' DESC, name")]

    def source_content(self, name: str) -> str | None:
        rows = self._rows("SELECT content FROM sources WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def stats(self) -> dict[str, object]:
        kinds = dict(self._rows("SELECT kind, COUNT(*) FROM passages GROUP BY kind ORDER BY kind"))
        per_source = dict(self._rows("SELECT source, COUNT(*) FROM passages GROUP BY source ORDER BY source"))
        return {"path": str(self.path), "bytes": self.path.stat().st_size, "passages": sum(kinds.values()),
                "by_kind": kinds, "by_source": per_source,
                "vehicles": self._rows("SELECT COUNT(*) FROM vehicles")[0][0]}


# -- building ---------------------------------------------------------------------------------------


def store_path(config) -> Path:
    """``retrieval.store``, or knowledge.sqlite in ``data.data_dir``."""
    configured = getattr(config.retrieval, "store", "")
    return Path(configured).expanduser() if configured else Path(config.data.data_dir) / "knowledge.sqlite"


def needs_build(path: Path) -> bool:
    """True when the store is missing, from another schema, or its builtin tables changed."""
    if not path.exists():
        return True
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            schema = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            row = db.execute("SELECT hash FROM sources WHERE name = ?", (BUILTIN,)).fetchone()
    except sqlite3.DatabaseError:
        return True
    return not schema or int(schema[0]) != SCHEMA_VERSION or not row or row[0] != builtin_hash()


def build_store(path: str | os.PathLike, knowledge: Knowledge | None = None, *, add: Sequence[Source] = (),
                remove: Sequence[str] = (), force: bool = False) -> dict[str, str]:
    """Bring the store up to date (atomically); returns {source: 'built' | 'kept' | 'removed'}.

    The builtin source is rebuilt when its hash changed; ``add`` puts (or replaces) imported
    sources; ``remove`` drops imported sources by name; imports already in the store are kept
    (also through ``force``, which rebuilds every source from scratch, and a schema change).
    """
    from carexpert.knowledge.loading import load_knowledge

    probe_fts5()
    path = Path(path)
    knowledge = knowledge or load_knowledge()
    wanted = {BUILTIN: Source(BUILTIN, BUILTIN, "", builtin_hash())}
    old_sources = _stored_sources(path)
    for name, source in old_sources.items():
        if name != BUILTIN and name not in remove:
            wanted[name] = source
    for source in add:
        wanted[source.name] = source
    reusable = path.exists() and not force and not needs_schema_reset(path)
    if reusable:
        changed = [s for s in wanted.values() if s.name not in old_sources or old_sources[s.name].hash != s.hash]
        dropped = [name for name in old_sources if name not in wanted]
    else:
        changed, dropped = list(wanted.values()), []
    report = {name: "built" if any(s.name == name for s in changed) else "kept" for name in wanted}
    report.update({name: "removed" for name in old_sources if name not in wanted})
    if reusable and not changed and not dropped:
        return report
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        if reusable:
            shutil.copyfile(path, temp)
        else:
            temp.unlink()
        with contextlib.closing(sqlite3.connect(temp)) as db:
            if not reusable:
                db.executescript(_SCHEMA)
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            with db:
                for name in [*dropped, *(s.name for s in changed)]:
                    _delete_source(db, name)
                for source in sorted(changed, key=lambda s: s.name != BUILTIN):
                    _insert_source(db, source, knowledge)
                _refresh_words(db)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return report


def _stored_sources(path: Path) -> dict[str, Source]:
    """The sources an existing store holds (empty when there is none or it cannot be read)."""
    if not path.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT name, kind, hash, content FROM sources").fetchall()
    except sqlite3.DatabaseError:
        return {}
    return {name: Source(name, kind, content, digest) for name, kind, digest, content in rows}


def needs_schema_reset(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    except sqlite3.DatabaseError:
        return True
    return not row or int(row[0]) != SCHEMA_VERSION


def _delete_source(db: sqlite3.Connection, name: str) -> None:
    for table in ("fts_topics", "fts_vehicles"):
        db.execute(f"INSERT INTO {table}({table}, rowid, title, keys, text) "
                   f"SELECT 'delete', rowid, title, keys, text FROM passages WHERE source = ? "
                   f"AND (kind = 'vehicle') = ?", (name, table == "fts_vehicles"))
    db.execute("DELETE FROM passages WHERE source = ?", (name,))
    db.execute("DELETE FROM vehicles WHERE source = ?", (name,))
    db.execute("DELETE FROM links WHERE source = ?", (name,))
    db.execute("DELETE FROM sources WHERE name = ?", (name,))


def _insert_source(db: sqlite3.Connection, source: Source, knowledge: Knowledge) -> None:
    from carexpert.knowledge import passages as text

    vehicles: Sequence[Vehicle] = ()
    keys: dict[str, str] = {}
    if source.kind == BUILTIN:
        vehicles = knowledge.vehicles
        items = [text.vehicle_passage(v, knowledge.segments) for v in vehicles]
        items += [text.concept_passage(c, knowledge) for c in knowledge.concepts]
        items += [text.maintenance_passage(m) for m in knowledge.maintenance]
        items += [text.concept_passage(t, knowledge) for t in knowledge.buying_topics if t.fact_id != text.BUDGET_ID]
        budget_topic = next((t for t in knowledge.buying_topics if t.fact_id == text.BUDGET_ID), None)
        items.append(text.budget_passage(budget_topic, knowledge.budget_tiers))
        for concept in (*knowledge.concepts, *knowledge.buying_topics):
            keys[concept.fact_id] = text.search_keys(concept)
        for entry in knowledge.maintenance:
            keys[entry.fact_id] = " ".join([entry.item, entry.action, *entry.key_terms])
    elif source.kind == "vehicles":
        vehicles = parse_vehicle_source(source, knowledge)
        items = [text.vehicle_passage(v, knowledge.segments) for v in vehicles]
    else:
        items = text.note_passages(Path(source.name), source.content)
    clash = _clashes(db, [p.id for p in items])
    if clash:
        raise UserError(f"{len(clash)} passage id(s) already in the store from another source", where=source.name,
                        details=[f"{pid} (from {src})" for pid, src in clash[:20]],
                        fix="give the rows ids of their own, or import the file under its earlier name to replace it")
    start = db.execute("SELECT COALESCE(MAX(ord), -1) + 1 FROM vehicles").fetchone()[0]
    for offset, v in enumerate(vehicles):
        row = {k: getattr(v, k) for k in VEHICLE_COLUMNS}
        db.execute("INSERT INTO vehicles VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (v.id, v.make, v.model, v.model_year, v.trim, v.segment, v.msrp_usd, start + offset,
                    json.dumps(row), source.name))
        for aspect, link in text.vehicle_links(knowledge, v):
            db.execute("INSERT INTO links VALUES (?,?,?,?)", (v.id, aspect, link, source.name))
    for p in items:
        key_text = keys.get(p.fact_id, "")
        cursor = db.execute("INSERT INTO passages (id, kind, title, text, source, keys) VALUES (?,?,?,?,?,?)",
                            (p.id, p.kind, p.title, p.text, source.name, key_text))
        table = "fts_vehicles" if p.kind == "vehicle" else "fts_topics"
        db.execute(f"INSERT INTO {table}(rowid, title, keys, text) VALUES (?,?,?,?)",
                   (cursor.lastrowid, p.title, key_text, p.text))
    db.execute("INSERT INTO sources VALUES (?,?,?,?)", (source.name, source.kind, source.hash, source.content))


def _clashes(db: sqlite3.Connection, ids: list[str]) -> list[tuple[str, str]]:
    found = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found += db.execute(f"SELECT id, source FROM passages WHERE id IN ({marks})", chunk).fetchall()
    return found


def _refresh_words(db: sqlite3.Connection) -> None:
    """The ordinary words of the store (for telling a made-up model name from an English word)."""
    db.execute("DELETE FROM words")
    words: set[str] = set()
    for (text,) in db.execute("SELECT text FROM passages WHERE kind != 'vehicle'"):
        words.update(w.lower() for w in TOKEN.findall(text))
    for (text,) in db.execute("SELECT DISTINCT engine || ' ' || transmission FROM "
                              "(SELECT json_extract(row, '$.engine') AS engine, "
                              "json_extract(row, '$.transmission') AS transmission FROM vehicles)"):
        words.update(w.lower() for w in TOKEN.findall(text or ""))
    db.executemany("INSERT OR IGNORE INTO words VALUES (?)", ((w,) for w in words))


# -- imports ----------------------------------------------------------------------------------------


def import_file(store: str | os.PathLike, file: str | os.PathLike, knowledge: Knowledge | None = None) -> tuple[Source, int]:
    """Import one file into the store (all or nothing); returns the source and how many passages it gave."""
    from carexpert.knowledge import passages as text
    from carexpert.knowledge.loading import load_knowledge

    knowledge = knowledge or load_knowledge()
    source = read_import(file)
    if source.name == BUILTIN:
        raise UserError("'builtin' is reserved for the shipped tables", where=str(file), fix="rename the file")
    count = len(parse_vehicle_source(source, knowledge)) if source.kind == "vehicles" else \
        len(text.note_passages(Path(source.name), source.content))
    if count == 0:
        raise UserError("nothing to import: no vehicle rows or note text", where=str(file))
    build_store(store, knowledge, add=[source])
    return source, count
