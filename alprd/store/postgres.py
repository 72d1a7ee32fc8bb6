"""The department's database on PostgreSQL: the same store, sized for a fleet's year of reads.

SQLite's migrations (:data:`alprd.store.MIGRATIONS`) stay the one definition of the schema: the
PostgreSQL tables, columns, keys and indexes are read off an in-memory SQLite database built by
them (:func:`derived_schema`), so a migration written once serves a unit and the department. What
PostgreSQL does its own way is added here (:data:`PG_EXTRAS`): a trigram index for partial plates
(SQLite's FTS5 table), the triggers that keep the OCR candidates, keep the access log append-only
and take an alert's dispositions with it, and ``alprd_glob`` for SQLite's ``GLOB``.

The policy code speaks SQLite's SQL through sqlite-utils. :class:`PgDatabase` offers the part of
that interface it uses, over a psycopg 3 connection, and :func:`translate` turns the few SQLite
idioms it uses (``?`` and ``:name`` parameters, ``GLOB``, ``json_each``) into PostgreSQL's; the
rest of the SQL is written to run on both.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.adapt import Loader
from psycopg.rows import dict_row

from alprd.records import utc_now
from alprd.store import MIGRATIONS, Store, StoreError

ADVISORY_LOCK = 0x616C707264  # "alprd": serialises the writers that SQLite serialises with BEGIN IMMEDIATE
PG_TYPES = {"TEXT": "text", "REAL": "double precision", "INTEGER": "bigint", "BLOB": "bytea", "": "text"}
SKIP_TABLES = ("sqlite_", "reads_plate_fts")  # SQLite's own, and what PG_EXTRAS replaces
NO_FOREIGN_KEYS = {("alerts", "read_id")}  # at the department an alert may arrive before its read's batch

PG_EXTRAS = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # SQLite's GLOB (``*``, ``?``) as a LIKE pattern; IMMUTABLE, so a constant pattern is folded and
    # the trigram index serves ``plate LIKE alprd_glob('*BC1*')``
    r"""CREATE OR REPLACE FUNCTION alprd_glob(p text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
        $$ SELECT replace(replace(replace(replace(replace(p, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'),
                          '?', '_') $$""",
    "CREATE INDEX IF NOT EXISTS idx_reads_plate_trgm ON reads USING gin (plate gin_trgm_ops)",
    ("CREATE INDEX IF NOT EXISTS idx_read_candidates_plate_trgm ON read_candidates "
     "USING gin (plate gin_trgm_ops)"),
    """CREATE OR REPLACE FUNCTION alprd_read_candidates() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF TG_OP = 'DELETE' THEN DELETE FROM read_candidates WHERE read_id = OLD.id; RETURN OLD; END IF;
        IF NEW.candidates IS NOT NULL THEN
          INSERT INTO read_candidates(plate, read_id) SELECT DISTINCT value, NEW.id
            FROM jsonb_array_elements_text(CAST(NEW.candidates AS jsonb)) AS c(value) WHERE value <> NEW.plate;
        END IF; RETURN NEW; END $$""",
    "DROP TRIGGER IF EXISTS reads_candidates ON reads",
    ("CREATE TRIGGER reads_candidates AFTER INSERT OR DELETE ON reads FOR EACH ROW "
     "EXECUTE FUNCTION alprd_read_candidates()"),
    """CREATE OR REPLACE FUNCTION alprd_read_context_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        DELETE FROM read_context WHERE read_id = OLD.id; RETURN OLD; END $$""",
    "DROP TRIGGER IF EXISTS reads_context_delete ON reads",
    ("CREATE TRIGGER reads_context_delete AFTER DELETE ON reads FOR EACH ROW "
     "EXECUTE FUNCTION alprd_read_context_delete()"),
    """CREATE OR REPLACE FUNCTION alprd_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation'; END $$""",
    "DROP TRIGGER IF EXISTS access_log_append_only ON access_log",
    ("CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON access_log "
     "FOR EACH STATEMENT EXECUTE FUNCTION alprd_append_only()"),
    """CREATE OR REPLACE FUNCTION alprd_alert_dispositions() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF TG_TABLE_NAME = 'alerts' THEN DELETE FROM alert_dispositions WHERE alert_id = OLD.id; RETURN OLD; END IF;
        IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM alerts WHERE id = OLD.alert_id) THEN RETURN OLD; END IF;
        IF TG_OP = 'UPDATE' AND (NEW.alert_id, NEW.disposition, NEW.note, NEW."user", NEW.ts)
            IS NOT DISTINCT FROM (OLD.alert_id, OLD.disposition, OLD.note, OLD."user", OLD.ts) THEN RETURN NEW; END IF;
        RAISE EXCEPTION 'alert_dispositions is a history: add a row' USING ERRCODE = 'integrity_constraint_violation';
        END $$""",
    "DROP TRIGGER IF EXISTS alerts_dispositions_delete ON alerts",
    ("CREATE TRIGGER alerts_dispositions_delete AFTER DELETE ON alerts FOR EACH ROW "
     "EXECUTE FUNCTION alprd_alert_dispositions()"),
    "DROP TRIGGER IF EXISTS alert_dispositions_history ON alert_dispositions",
    ("CREATE TRIGGER alert_dispositions_history BEFORE UPDATE OR DELETE ON alert_dispositions FOR EACH ROW "
     "EXECUTE FUNCTION alprd_alert_dispositions()"),
]


# -- the schema, derived from SQLite's migrations ---------------------------------------------------

@dataclass(frozen=True)
class Table:
    name: str
    columns: list[tuple[str, str, bool, str | None]]  # name, PostgreSQL type, not null, default
    pk: list[str]
    identity: str | None  # a single integer key that PostgreSQL numbers (SQLite's INTEGER PRIMARY KEY)
    foreign_keys: list[tuple[str, str, str]]  # column, other table, other column
    indexes: list[tuple[str, list[str], bool]]  # name, columns, unique


def derived_schema() -> list[Table]:
    """Every table of the current SQLite schema, as PostgreSQL should have it."""
    lite = Store(":memory:")
    tables = []
    try:
        for t in lite.db.tables:
            if t.name.startswith(SKIP_TABLES):
                continue
            pk = [c.name for c in sorted((c for c in t.columns if c.is_pk), key=lambda c: c.is_pk)]
            identity = pk[0] if len(pk) == 1 and t.columns_dict[pk[0]] is int else None
            if t.name == "reads":
                identity = "seq"  # SQLite numbers it in a trigger
            columns = [(c.name, PG_TYPES[c.type.upper()], bool(c.notnull), c.default_value) for c in t.columns]
            fks = [(fk.column, fk.other_table, fk.other_column) for fk in t.foreign_keys
                   if (t.name, fk.column) not in NO_FOREIGN_KEYS]
            indexes = []
            for _, name, unique, origin, _ in lite.db.execute(f"PRAGMA index_list('{t.name}')").fetchall():
                if origin == "c":
                    cols = [r[2] for r in lite.db.execute(f"PRAGMA index_info('{name}')")]
                    indexes.append((name, cols, bool(unique)))
            tables.append(Table(t.name, columns, pk, identity, fks, indexes))
    finally:
        lite.close()
    return tables


def _column_ddl(table: Table, column: tuple[str, str, bool, str | None]) -> pgsql.Composable:
    name, kind, not_null, default = column
    parts = [pgsql.Identifier(name), pgsql.SQL(kind)]
    if name == table.identity:
        parts.append(pgsql.SQL("GENERATED BY DEFAULT AS IDENTITY"))
    if not_null:
        parts.append(pgsql.SQL("NOT NULL"))
    if default is not None:
        parts.append(pgsql.SQL("DEFAULT ") + pgsql.Literal(default))
    return pgsql.SQL(" ").join(parts)


def table_ddl(table: Table) -> pgsql.Composed:
    items = [_column_ddl(table, c) for c in table.columns]
    if table.pk:
        items.append(pgsql.SQL("PRIMARY KEY ({})").format(pgsql.SQL(", ").join(map(pgsql.Identifier, table.pk))))
    return pgsql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(pgsql.Identifier(table.name),
                                                                  pgsql.SQL(", ").join(items))


def index_ddl(table: Table, name: str, columns: list[str], unique: bool) -> pgsql.Composed:
    return pgsql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} ({})").format(
        pgsql.SQL("UNIQUE " if unique else ""), pgsql.Identifier(name), pgsql.Identifier(table.name),
        pgsql.SQL(", ").join(map(pgsql.Identifier, columns)))


# -- SQLite's SQL as PostgreSQL's ------------------------------------------------------------------

_LITERAL = re.compile(r"('(?:[^']|'')*')")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_GLOB = re.compile(r"([\w.]+)\s+GLOB\s+(%s|%\(\w+\)s|[\w.]+)", re.IGNORECASE)
_JSON_EACH = re.compile(r"\bjson_each\(([^()]*)\)", re.IGNORECASE)
_BRACKETS = re.compile(r"\[(\w+)\]")


def _code(part: str) -> str:
    part = _JSON_EACH.sub(r"jsonb_array_elements_text(CAST(\1 AS jsonb)) AS json_each(value)", part)
    part = part.replace("%", "%%").replace("?", "%s")
    part = _NAMED.sub(r"%(\1)s", part)
    part = _GLOB.sub(r"\1 LIKE alprd_glob(\2)", part)
    return _BRACKETS.sub(r'"\1"', part)


def translate(statement: str) -> str:
    """The PostgreSQL form of a statement written for SQLite (in string literals only ``%`` is escaped,
    as psycopg reads the whole statement)."""
    return "".join(p.replace("%", "%%") if i % 2 else _code(p) for i, p in enumerate(_LITERAL.split(statement)))


class _IntegralNumeric(Loader):
    """``sum()`` of bigints is numeric in PostgreSQL: give integers back as int, as SQLite does."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


# -- the part of sqlite-utils the policy code uses ---------------------------------------------------

class PgTable:
    def __init__(self, db: PgDatabase, name: str):
        self.db, self.name = db, name
        self.last_pk: Any = None

    def _pk(self) -> list[str]:
        return self.db.primary_key(self.name)

    def insert(self, record: Mapping[str, Any]) -> PgTable:
        cols = list(record)
        pk = self._pk()
        statement = pgsql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
            pgsql.Identifier(self.name), pgsql.SQL(", ").join(map(pgsql.Identifier, cols)),
            pgsql.SQL(", ").join(pgsql.Placeholder() * len(cols)),
            pgsql.SQL(", ").join(map(pgsql.Identifier, pk or cols[:1])))
        row = self.db.conn.raw.execute(statement, [record[c] for c in cols]).fetchone()
        self.last_pk = row[0] if len(row) == 1 else tuple(row)
        return self

    def insert_all(self, records: Iterable[Mapping[str, Any]]) -> PgTable:
        for record in records:
            self.insert(record)
        return self

    def update(self, pk: Any, values: Mapping[str, Any]) -> PgTable:
        keys = self._pk()
        pk_values = list(pk) if isinstance(pk, (tuple, list)) else [pk]
        statement = pgsql.SQL("UPDATE {} SET {} WHERE {}").format(
            pgsql.Identifier(self.name),
            pgsql.SQL(", ").join(pgsql.SQL("{} = %s").format(pgsql.Identifier(c)) for c in values),
            pgsql.SQL(" AND ").join(pgsql.SQL("{} = %s").format(pgsql.Identifier(k)) for k in keys))
        self.db.conn.raw.execute(statement, [*values.values(), *pk_values])
        return self


class PgConnection:
    """What the policy code calls on ``db.conn``: execute, executemany, in_transaction."""

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, statement: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(translate(statement), params)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        cur = self.raw.cursor()
        cur.executemany(translate(statement), list(rows))
        return cur

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


class PgDatabase:
    def __init__(self, raw: psycopg.Connection):
        self.conn = PgConnection(raw)
        self._pks: dict[str, list[str]] = {}

    def execute(self, statement: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> psycopg.Cursor:
        return self.conn.execute(statement, params)

    def query(self, statement: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Iterator[dict[str, Any]]:
        with self.conn.raw.cursor(row_factory=dict_row) as cur:
            cur.execute(translate(statement), params)
            yield from cur.fetchall()

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)

    def primary_key(self, table: str) -> list[str]:
        if table not in self._pks:
            self._pks[table] = [r[0] for r in self.conn.raw.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(%s AS regclass) AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)", [table])]
        return self._pks[table]


# -- the store -------------------------------------------------------------------------------------

def redacted(url: str) -> str:
    """A connection URL fit for a message: no password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def connect(url: str) -> psycopg.Connection:
    try:
        raw = psycopg.connect(url, autocommit=True, prepare_threshold=None, connect_timeout=10,
                              application_name="alprd")
    except psycopg.Error as err:
        raise StoreError(f"{redacted(url)}: cannot connect to PostgreSQL ({str(err).strip()[:300]}); check [store] "
                         "database, that the server runs, and the password (PGPASSWORD or ~/.pgpass)") from None
    raw.adapters.register_loader("numeric", _IntegralNumeric)
    return raw


def sync_schema(raw: psycopg.Connection, migrations: list[str]) -> None:
    """Bring the database to the current schema (tables, columns, keys, indexes, extras), under a lock
    so that several servers starting at once do it once; record the migrations it stands for."""
    with raw.transaction():
        raw.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
        raw.execute("CREATE TABLE IF NOT EXISTS schema_migrations (migration text PRIMARY KEY, applied_at text)")
        applied = {r[0] for r in raw.execute("SELECT migration FROM schema_migrations")}
        unknown = applied - set(migrations)
        if unknown:
            raise StoreError(f"the database has migrations this alprd does not know ({', '.join(sorted(unknown))}): "
                             "it was written by a newer version: upgrade alprd")
        if applied == set(migrations):
            return
        tables = derived_schema()
        for table in tables:
            raw.execute(table_ddl(table))
            have = {r[0] for r in raw.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = %s", [table.name])}
            for column in table.columns:
                if column[0] not in have:
                    raw.execute(pgsql.SQL("ALTER TABLE {} ADD COLUMN {}").format(
                        pgsql.Identifier(table.name), _column_ddl(table, column)))
            for name, cols, unique in table.indexes:
                raw.execute(index_ddl(table, name, cols, unique))
        for table in tables:  # after every table exists
            for column, other, other_column in table.foreign_keys:
                name = f"fk_{table.name}_{column}"
                if not raw.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", [name]).fetchone():
                    fk = pgsql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})")
                    raw.execute(fk.format(
                        pgsql.Identifier(table.name), pgsql.Identifier(name), pgsql.Identifier(column),
                        pgsql.Identifier(other), pgsql.Identifier(other_column)))
        for statement in PG_EXTRAS:
            raw.execute(statement)
        now = utc_now()
        for name in migrations:
            raw.execute("INSERT INTO schema_migrations VALUES (%s, %s) ON CONFLICT DO NOTHING", [name, now])


class PgStore(Store):
    """The store on PostgreSQL; what is not here runs as it is through :class:`PgDatabase`."""

    dialect = "postgresql"
    integrity_error: type[Exception] = psycopg.IntegrityError
    write_errors: tuple[type[Exception], ...] = (psycopg.OperationalError,)

    def __init__(self, url: str, audit_secret: Path):
        self.url = url
        self.path = Path(redacted(url))  # for messages only
        self.audit_secret = audit_secret
        self._raw = connect(url)
        self.db = PgDatabase(self._raw)  # type: ignore[assignment]
        self._lock = threading.RLock()
        self.migrate()

    def migrate(self) -> int:
        sync_schema(self._raw, [name for name, _ in MIGRATIONS])
        return self.schema_version

    @property
    def schema_version(self) -> int:
        return self._raw.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]

    def quick_check(self) -> str:
        self._raw.execute("SELECT 1")
        return "ok"

    def columns(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for table, column in self._raw.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "ORDER BY table_name, ordinal_position"):
            out.setdefault(table, []).append(column)
        return out

    @contextmanager
    def transaction(self, exclusive: bool = True) -> Iterator[PgDatabase]:  # type: ignore[override]
        """One unit of work; ``exclusive`` also waits for every other alprd writer's (as SQLite's write lock
        does), which the access log's chain and the hotlist's versions need; idempotent ingest does not."""
        with self._lock:
            if self.db.conn.in_transaction:
                yield self.db
                return
            with self._raw.transaction():
                if exclusive:
                    self._raw.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
                yield self.db

    def query(self, statement: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(statement, params if isinstance(params, dict) else list(params)))

    def close(self) -> None:
        with self._lock:
            self._raw.close()
