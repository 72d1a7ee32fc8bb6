"""The SQLite buffer: every read, alert and policy record lives here first.

SQLite in WAL mode through sqlite-utils. The schema is built by an ordered list
of named forward migrations (``MIGRATIONS``); ``schema_version`` is how many
have been applied. A migration is never edited once released: add a new one.

By design there is no column anywhere for personal data (names, birth dates,
race, sex): ``PERSONAL_DATA_COLUMNS`` is checked by the tests against the live
schema.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from alprd.config import StoreConfig
from alprd.keys import AUDIT_SECRET_FILE
from alprd.records import Read, utc_now

PERSONAL_DATA_COLUMNS = frozenset(
    {"name", "first_name", "last_name", "owner", "owner_name", "dob", "date_of_birth",
     "birth_date", "race", "sex", "gender", "ssn", "ethnicity"}
)


def _m0001_initial(db: sqlite_utils.Database) -> None:
    db["reads"].create(
        {
            "id": str, "plate": str, "confidence": float, "char_confidences": str,
            "ts": str, "device_id": str, "camera_id": str,
            "box": str, "frames": int,
            "lat": float, "lon": float, "speed_kmh": float, "heading_deg": float,
            "gps_fix_ts": str, "gps_stale": int,
            "crop_jpeg": bytes, "uploaded_at": str,
        },
        pk="id", not_null={"plate", "ts", "confidence", "camera_id"},
    )
    db["reads"].create_index(["ts"])
    db["reads"].create_index(["plate"])
    db["reads"].create_index(["uploaded_at", "ts"])
    db["hotlist"].create(
        {
            "id": int, "pattern": str, "state": str, "category": str, "priority": int,
            "source": str, "case_number": str, "entered": str, "expires": str, "note": str,
            "officer_entered": int,
        },
        pk="id", not_null={"pattern", "category"},
    )
    db["hotlist_meta"].create(
        {"key": str, "value": str}, pk="key",
    )
    db["alerts"].create(
        {
            "id": str, "read_id": str, "plate": str, "pattern": str, "match_kind": str,
            "category": str, "priority": int, "case_number": str, "note": str, "ts": str,
            "payload": str, "published_at": str, "disposition": str, "disposition_by": str,
            "disposition_at": str,
        },
        pk="id", foreign_keys=[("read_id", "reads", "id")],
    )
    db["alerts"].create_index(["plate", "ts"])
    db["users"].create(
        {
            "username": str, "role": str, "password_hash": str, "trained_on": str,
            "disabled": int, "created_at": str, "failed_logins": int, "locked_until": str,
        },
        pk="username", not_null={"role", "password_hash"},
    )
    db["access_log"].create(
        {
            "seq": int, "ts": str, "username": str, "action": str, "query": str,
            "case_number": str, "reason": str, "records": int, "prev_hash": str, "hash": str,
        },
        pk="seq", not_null={"ts", "action", "hash"},
    )
    db["evidence_holds"].create(
        {
            "id": int, "case_number": str, "reason": str, "created_by": str,
            "created_at": str, "released_at": str,
        },
        pk="id", not_null={"case_number", "reason"},
    )
    db["hold_reads"].create(
        {"hold_id": int, "read_id": str}, pk=("hold_id", "read_id"),
        foreign_keys=[("hold_id", "evidence_holds", "id"), ("read_id", "reads", "id")],
    )
    db["hold_reads"].create_index(["read_id"])
    db["release_requests"].create(
        {
            "id": int, "agency": str, "requester": str, "purpose": str, "case_number": str,
            "status": str, "requested_by": str, "requested_at": str, "decided_by": str,
            "decided_at": str, "decision_note": str,
        },
        pk="id", not_null={"agency", "requester", "purpose", "case_number", "status"},
    )
    db["purge_log"].create(
        {"id": int, "ts": str, "cutoff": str, "deleted": int, "held": int, "not_uploaded": int},
        pk="id",
    )


def _audit_0001_sessions(db: sqlite_utils.Database) -> None:
    """Login sessions (only a hash of each token is kept), the access log's head
    anchor (so deleting its last records shows), and triggers that make the
    access log append-only for anything short of dropping them."""
    db["sessions"].create(
        {"token_hash": str, "username": str, "created_at": str, "expires_at": str},
        pk="token_hash", not_null={"username", "expires_at"},
        foreign_keys=[("username", "users", "username")],
    )
    db["audit_head"].create({"id": int, "seq": int, "hash": str}, pk="id")
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER access_log_no_{event.lower()} BEFORE {event} ON access_log "
            "BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END"
        )


def _policy_0001_search(db: sqlite_utils.Database) -> None:
    """Fast plate search and counts that outlive the purge.

    ``reads.seq`` is a stable integer key (rowids of a table with a text primary
    key may change on VACUUM) that links each read to a trigram FTS5 index of
    its plate, kept current by triggers, so ``*BC1*`` finds reads without a scan.
    ``usage_archive`` keeps per-month counts of purged reads and alerts for the
    annual report."""
    db.execute("ALTER TABLE reads ADD COLUMN seq INTEGER")
    db.execute("UPDATE reads SET seq = rowid")
    db.execute("CREATE UNIQUE INDEX idx_reads_seq ON reads(seq)")
    db.execute("CREATE INDEX idx_reads_camera_ts ON reads(camera_id, ts)")
    db.execute("CREATE INDEX idx_reads_lat_lon ON reads(lat, lon)")
    db.execute("CREATE VIRTUAL TABLE reads_plate_fts USING fts5(plate, tokenize = 'trigram', detail = 'none')")
    db.execute("INSERT INTO reads_plate_fts(rowid, plate) SELECT seq, plate FROM reads")
    db.execute(
        "CREATE TRIGGER reads_seq_fts_insert AFTER INSERT ON reads BEGIN "
        "UPDATE reads SET seq = (SELECT coalesce(max(seq), 0) + 1 FROM reads) "
        "WHERE rowid = new.rowid AND new.seq IS NULL; "
        "INSERT INTO reads_plate_fts(rowid, plate) SELECT seq, plate FROM reads WHERE rowid = new.rowid; END"
    )
    db.execute(
        "CREATE TRIGGER reads_fts_delete AFTER DELETE ON reads BEGIN "
        "DELETE FROM reads_plate_fts WHERE rowid = old.seq; END"
    )
    db.execute(
        "CREATE TRIGGER reads_fts_update AFTER UPDATE OF plate ON reads BEGIN "
        "UPDATE reads_plate_fts SET plate = new.plate WHERE rowid = new.seq; END"
    )
    db.execute("CREATE INDEX idx_evidence_holds_case ON evidence_holds(case_number)")
    db.execute("CREATE INDEX idx_access_log_user_ts ON access_log(username, ts)")
    db["usage_archive"].create({"month": str, "metric": str, "n": int}, pk=("month", "metric"))


def _hotlist_0001_lookup(db: sqlite_utils.Database) -> None:
    """Hotlist hits fetch their entries by pattern; repeat alerts are found by plate or
    pattern; the uplink sends unpublished alerts first; a disposition may carry a note."""
    db.execute("CREATE INDEX idx_hotlist_pattern ON hotlist(pattern)")
    db.execute("CREATE INDEX idx_hotlist_officer ON hotlist(officer_entered)")
    db.execute("CREATE INDEX IF NOT EXISTS idx_alerts_published ON alerts(published_at)")
    db.execute("CREATE INDEX idx_alerts_pattern_ts ON alerts(pattern, ts)")
    db.execute("ALTER TABLE alerts ADD COLUMN disposition_note TEXT")


def _hotlist_0002_generation(db: sqlite_utils.Database) -> None:
    """A department list is written in small chunks under a new generation number and
    made current by one tiny transaction, so a million-row list never holds the write
    lock for long; rows of other generations are invisible and purged in chunks."""
    db.execute("ALTER TABLE hotlist ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
    db.execute("DROP INDEX idx_hotlist_officer")
    db.execute("CREATE INDEX idx_hotlist_generation ON hotlist(generation)")


def _hotlist_0003_changes(db: sqlite_utils.Database) -> None:
    """Which patterns each version of the department list changed, so a publish can send a delta
    from the version the units have. A list from before has no such record: deltas start after it."""
    db.execute("CREATE TABLE hotlist_changes (version INTEGER NOT NULL, pattern TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_hotlist_changes_version ON hotlist_changes(version)")
    db.execute("INSERT INTO hotlist_meta (key, value) SELECT 'changes_since', value FROM hotlist_meta "
               "WHERE key = 'version'")


def _audit_0002_keyed(db: sqlite_utils.Database) -> None:
    """Each access record's MAC under the unit's audit secret (a file outside the
    database), so a chain re-hashed by someone without that file shows. Records
    written before this migration keep a NULL MAC: an unkeyed start of the chain."""
    db.execute("ALTER TABLE access_log ADD COLUMN mac TEXT")


def _reads_0001_candidates(db: sqlite_utils.Database) -> None:
    """A read keeps the OCR's other likely texts (hotlist matching and search use them) and its region.

    ``read_candidates`` indexes the alternatives (not the plate itself) so that a plate
    search finds a read misread at the top; triggers keep it in step with ``reads``.
    """
    db.execute("ALTER TABLE reads ADD COLUMN candidates TEXT")
    db.execute("ALTER TABLE reads ADD COLUMN candidate_scores TEXT")
    db.execute("ALTER TABLE reads ADD COLUMN region TEXT")
    db.execute("CREATE TABLE read_candidates (plate TEXT NOT NULL, read_id TEXT NOT NULL)")
    db.execute("CREATE INDEX idx_read_candidates_plate ON read_candidates(plate)")
    db.execute("CREATE INDEX idx_read_candidates_read ON read_candidates(read_id)")
    db.execute(
        "CREATE TRIGGER reads_candidates_insert AFTER INSERT ON reads WHEN new.candidates IS NOT NULL BEGIN "
        "INSERT INTO read_candidates(plate, read_id) SELECT DISTINCT value, new.id FROM json_each(new.candidates) "
        "WHERE value != new.plate; END"
    )
    db.execute(
        "CREATE TRIGGER reads_candidates_delete AFTER DELETE ON reads BEGIN "
        "DELETE FROM read_candidates WHERE read_id = old.id; END"
    )


def _screen_0001_screen(db: sqlite_utils.Database) -> None:
    """What the in-car screen adds: a wider picture around each read, the history of alert
    dispositions, and the officer-entered BOLOs waiting to be uploaded.

    ``read_context`` and ``alert_dispositions`` go with their read and alert (triggers), so the
    retention purge takes them along. A disposition is never changed: a new one is a new row, the
    newest is the alert's current one (also copied onto ``alerts`` for the lists and the report).
    """
    db["read_context"].create({"read_id": str, "jpeg": bytes}, pk="read_id")
    db.execute("CREATE TRIGGER reads_context_delete AFTER DELETE ON reads BEGIN "
               "DELETE FROM read_context WHERE read_id = old.id; END")
    db["alert_dispositions"].create(
        {"id": str, "alert_id": str, "disposition": str, "note": str, "user": str, "ts": str, "uploaded_at": str},
        pk="id", not_null={"alert_id", "disposition", "user", "ts"})
    db.execute("CREATE INDEX idx_alert_dispositions_alert ON alert_dispositions(alert_id, ts)")
    db.execute("CREATE INDEX idx_alert_dispositions_unsent ON alert_dispositions(uploaded_at)")
    db.execute("CREATE TRIGGER alerts_dispositions_delete AFTER DELETE ON alerts BEGIN "
               "DELETE FROM alert_dispositions WHERE alert_id = old.id; END")
    db.execute("CREATE TRIGGER alert_dispositions_no_update BEFORE UPDATE OF alert_id, disposition, note, user, ts "
               "ON alert_dispositions BEGIN SELECT RAISE(ABORT, 'alert_dispositions is a history: add a row'); END")
    db.execute("CREATE TRIGGER alert_dispositions_no_delete BEFORE DELETE ON alert_dispositions "
               "WHEN EXISTS (SELECT 1 FROM alerts WHERE id = old.alert_id) "  # only with their alert (the purge)
               "BEGIN SELECT RAISE(ABORT, 'alert_dispositions is a history: add a row'); END")
    db["bolo_uploads"].create(
        {"id": str, "plate": str, "category": str, "case_number": str, "note": str, "priority": int,
         "expires_at": str, "entered_by": str, "entered_at": str, "uploaded_at": str},
        pk="id", not_null={"plate", "category", "case_number", "entered_by", "entered_at"})
    db.execute("CREATE INDEX idx_bolo_uploads_unsent ON bolo_uploads(uploaded_at)")


def _server_0001_fleet(db: sqlite_utils.Database) -> None:
    """What the department's server adds (:mod:`alprd.server`; empty on a unit): which unit sent an
    alert and when it arrived, each unit's latest status, the messages refused at ingest, and the
    fleet-wide look-ups by unit and time."""
    db.execute("ALTER TABLE alerts ADD COLUMN device_id TEXT")
    db.execute("ALTER TABLE alerts ADD COLUMN received_at TEXT")
    db.execute("CREATE INDEX idx_reads_device_ts ON reads(device_id, ts)")
    db.execute("CREATE INDEX idx_alerts_device_ts ON alerts(device_id, ts)")
    db["devices"].create({"device_id": str, "state": str, "status": str, "heartbeat": str, "updated_at": str},
                         pk="device_id")
    db["refused"].create({"id": int, "received_at": str, "topic": str, "error": str, "size": int,
                          "payload": bytes}, pk="id")


Migration = Callable[[sqlite_utils.Database], None]

# Append only. The position in this list is the schema version it brings.
MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_initial", _m0001_initial),
    ("audit_0001_sessions", _audit_0001_sessions),
    ("policy_0001_search", _policy_0001_search),
    ("hotlist_0001_lookup", _hotlist_0001_lookup),
    ("hotlist_0002_generation", _hotlist_0002_generation),
    ("audit_0002_keyed", _audit_0002_keyed),
    ("reads_0001_candidates", _reads_0001_candidates),
    ("screen_0001_screen", _screen_0001_screen),
    ("hotlist_0003_changes", _hotlist_0003_changes),
    ("server_0001_fleet", _server_0001_fleet),
]


class StoreError(RuntimeError):
    """The database cannot be used (wrong file, newer schema, disk problem)."""


DB_FILE_MODE = 0o600  # plates and positions: the alprd user alone, whatever the umask


def _private(path: Path) -> None:
    """Create the database file 0600, or bring an existing one and its WAL files to 0600.

    SQLite gives the -wal and -shm files the database file's mode, so this one decides.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # missing, or not ours to change: leave it
            mode = file.stat().st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                file.chmod(DB_FILE_MODE)


class Store:
    """Thread-safe access to the database; one instance per process."""

    dialect = "sqlite"  # PgStore (alprd.store.postgres): "postgresql"
    integrity_error: type[Exception] = sqlite3.IntegrityError
    write_errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)  # locked, full: try again later

    def __init__(self, path: str | Path, audit_secret: Path | None = None, readonly: bool = False):
        """Open (creating and migrating) the database; ``readonly`` (diagnostics) never writes nor migrates."""
        self.path = Path(path)
        self.audit_secret = audit_secret or self.path.parent / AUDIT_SECRET_FILE  # the access log's key file
        if str(path) != ":memory:" and not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _private(self.path)
        try:
            conn = (sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=5)
                    if readonly else sqlite3.connect(str(path), check_same_thread=False, timeout=30))
            self.db = sqlite_utils.Database(conn)
            if str(path) != ":memory:" and not readonly:
                self.db.enable_wal()
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path}: cannot open as an SQLite database ({err}); "
                             "move the file aside and restart to create a new one") from None
        self._lock = threading.RLock()
        if not readonly:
            self.migrate()

    # -- schema ---------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        if "schema_migrations" not in self.db.table_names():
            return 0
        return self.db["schema_migrations"].count

    def migrate(self) -> int:
        """Apply the migrations this database has not seen; returns the new version."""
        with self._lock:
            if "schema_migrations" not in self.db.table_names():
                self.db["schema_migrations"].create({"migration": str, "applied_at": str}, pk="migration")
            applied = {r["migration"] for r in self.db["schema_migrations"].rows}
            known = {name for name, _ in MIGRATIONS}
            unknown = applied - known
            if unknown:
                raise StoreError(
                    f"{self.path}: database has migrations this alprd does not know "
                    f"({', '.join(sorted(unknown))}); it was written by a newer version: upgrade alprd"
                )
            for name, migration in MIGRATIONS:
                if name in applied:
                    continue
                with self.db.conn:
                    migration(self.db)
                    self.db["schema_migrations"].insert({"migration": name, "applied_at": utc_now()})
            return self.schema_version

    def quick_check(self) -> str:
        """SQLite's ``pragma quick_check``: "ok", or what is damaged."""
        return self.query("pragma quick_check")[0]["quick_check"]

    def columns(self) -> dict[str, list[str]]:
        """Every table's column names (used by the no-personal-data check)."""
        return {t.name: [c.name for c in t.columns] for t in self.db.tables}

    # -- transactions ---------------------------------------------------------
    @contextmanager
    def transaction(self, exclusive: bool = True) -> Iterator[sqlite_utils.Database]:
        """Serialise writers across threads and commit or roll back as one unit.

        The explicit BEGIN matters: sqlite-utils commits each ``db.execute`` by
        itself unless a transaction is already open. Nested use joins the outer one.
        SQLite has one writer at a time whatever ``exclusive`` says (PostgreSQL lets
        idempotent writes such as the ingest's run side by side).
        """
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                yield self.db
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, params))

    # -- reads ----------------------------------------------------------------
    def insert_read(self, read: Read, context_jpeg: bytes | None = None) -> None:
        """Commit one read (with the wider picture around it, if any); only after this returns may anything
        act on it."""
        with self.transaction() as db:
            db["reads"].insert(read.to_row())
            if context_jpeg:
                db["read_context"].insert({"read_id": read.id, "jpeg": context_jpeg})

    def read_context(self, read_id: str) -> bytes | None:
        """The wider picture stored around a read (the screen's view of the vehicle)."""
        rows = self.query("select jpeg from read_context where read_id = ?", [read_id])
        return rows[0]["jpeg"] if rows else None

    def get_read(self, read_id: str) -> dict[str, Any] | None:
        rows = self.query("select * from reads where id = ?", [read_id])
        return rows[0] if rows else None

    def count_reads(self) -> int:
        return self.query("select count(*) as n from reads")[0]["n"]

    def pending_reads(self, limit: int) -> list[dict[str, Any]]:
        """Oldest reads not yet acknowledged by the broker."""
        return self.query(
            "select * from reads where uploaded_at is null order by ts limit ?", [limit]
        )

    def unsent_reads(self, limit: int, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """``id`` and ``ts`` of the oldest reads not uploaded, less ``exclude`` (already on their way)."""
        return self.query("select id, ts from reads where uploaded_at is null "
                          "and id not in (select value from json_each(?)) order by ts, id limit ?",
                          [json.dumps(list(exclude)), limit])

    def reads_by_id(self, ids: list[str]) -> list[dict[str, Any]]:
        return self.query("select * from reads where id in (select value from json_each(?)) order by ts, id",
                          [json.dumps(ids)])

    def oldest_unsent_ts(self) -> str | None:
        """Timestamp of the oldest read not uploaded (an index lookup, cheap to call often)."""
        rows = self.query("select ts from reads where uploaded_at is null order by ts limit 1")
        return rows[0]["ts"] if rows else None

    def mark_uploaded(self, read_ids: list[str], when: str | None = None) -> None:
        when = when or utc_now()
        with self.transaction() as db:
            db.conn.executemany(
                "update reads set uploaded_at = ? where id = ?", [(when, i) for i in read_ids]
            )

    def backlog(self) -> tuple[int, str | None]:
        """(number of reads not uploaded, timestamp of the oldest of them)."""
        row = self.query("select count(*) as n, min(ts) as oldest from reads where uploaded_at is null")[0]
        return row["n"], row["oldest"]

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()


def open_store(cfg: StoreConfig) -> Store:
    """The store as configured (SQLite, or PostgreSQL for ``database = "postgresql://..."``), with its
    access-log secret where the configuration says."""
    if cfg.url:
        from alprd.store.postgres import PgStore  # psycopg only where a department uses PostgreSQL

        return PgStore(cfg.url, cfg.audit_secret_path)
    return Store(cfg.path, cfg.audit_secret_path)
