"""The access log: who touched stored data, when, why, and how much of it.

Tamper-evident by a hash chain: each record's ``hash`` covers its own fields and
the ``prev_hash`` of the record before it, so editing, deleting or reordering a
record breaks the chain at a place :func:`find_problems` can name. The newest
record's seq and hash are also kept in ``audit_head``, so cutting records off
the end shows too. Triggers refuse UPDATE and DELETE on ``access_log``; the chain
is what catches someone who drops them. In the daemon (``journal=True``) every
record also goes to journald, a second copy outside the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from alprd.log import get_logger
from alprd.records import utc_now
from alprd.store import Store

GENESIS = "0" * 64
HASHED_FIELDS = ("ts", "username", "action", "query", "case_number", "reason", "records")


@dataclass(frozen=True)
class AccessRecord:
    seq: int
    ts: str
    username: str | None
    action: str
    query: str
    case_number: str | None
    reason: str | None
    records: int
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Problem:
    """One break in the chain, naming the record (by seq) it concerns."""

    seq: int
    kind: Literal["edited", "deleted", "reordered", "broken"]
    message: str

    def __str__(self) -> str:
        return self.message


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and this record's fields (canonical JSON)."""
    body = json.dumps([fields.get(k) for k in HASHED_FIELDS], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def find_problems(rows: Sequence[dict[str, Any]], head: dict[str, Any] | None) -> list[Problem]:
    """Check a chain given in seq order (pure: no database).

    Edited: a record's fields no longer match its hash. Deleted: a gap in seq,
    or records missing after the last one the head anchor remembers.
    Reordered: a record's predecessor (by ``prev_hash``) is another record than
    the one before it. Broken: the predecessor is nowhere (re-hashed or replaced).
    """
    problems: list[Problem] = []
    seq_of = {r["hash"]: r["seq"] for r in rows}
    prev_hash, prev_seq = GENESIS, 0
    for row in rows:
        seq = row["seq"]
        if record_hash(row["prev_hash"], row) != row["hash"]:
            problems.append(Problem(seq, "edited", f"record {seq} was edited: its contents no longer match its hash"))
        gap = seq != prev_seq + 1
        if gap:
            missing = f"{prev_seq + 1}" if seq == prev_seq + 2 else f"{prev_seq + 1}..{seq - 1}"
            problems.append(Problem(prev_seq + 1, "deleted",
                                    f"record(s) {missing} deleted (missing before record {seq})"))
        if row["prev_hash"] != prev_hash:
            actual = seq_of.get(row["prev_hash"])
            if actual is not None and actual != seq:
                problems.append(Problem(seq, "reordered",
                                        f"record {seq} was reordered: it was written after record {actual}, "
                                        f"not after record {prev_seq}"))
            elif not gap and row["prev_hash"] != GENESIS:
                problems.append(Problem(seq, "broken",
                                        f"record {seq} does not follow record {prev_seq}: record {prev_seq} was "
                                        "replaced or re-hashed, or a record between them was deleted"))
        prev_hash, prev_seq = row["hash"], seq
    if head is not None:
        if head["seq"] > prev_seq:
            problems.append(Problem(prev_seq + 1, "deleted",
                                    f"record(s) {prev_seq + 1}..{head['seq']} deleted from the end of the log"))
        elif head["seq"] == prev_seq and head["hash"] != prev_hash:
            problems.append(Problem(prev_seq, "edited",
                                    f"record {prev_seq} was replaced: it is not the record last written"))
    return problems


def _query_text(query: str | dict[str, Any] | None) -> str:
    if query is None:
        return ""
    return query if isinstance(query, str) else json.dumps(query, sort_keys=True, ensure_ascii=False)


class AccessLog:
    """Append and check access records in the ``access_log`` table."""

    def __init__(self, store: Store, journal: bool = False):
        """``journal``: also log each record (the daemon's journald copy; never on a command's stdout)."""
        self.store = store
        self.journal = journal
        self.log = get_logger("alprd.audit")

    def record(
        self,
        username: str | None,
        action: str,
        query: str | dict[str, Any] | None = None,
        case_number: str | None = None,
        reason: str | None = None,
        records: int = 0,
    ) -> int:
        """Append one record (atomically with its head anchor); returns its seq."""
        fields = {
            "ts": utc_now(), "username": username, "action": action, "query": _query_text(query),
            "case_number": case_number or None, "reason": reason or None, "records": int(records),
        }
        with self.store.transaction() as db:
            if not db.conn.in_transaction:  # other processes append too: take the write lock first
                db.execute("BEGIN IMMEDIATE")
            last = db.execute("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            row = {"seq": seq, **fields, "prev_hash": prev, "hash": record_hash(prev, fields)}
            db["access_log"].insert(row)
            db.execute("INSERT OR REPLACE INTO audit_head(id, seq, hash) VALUES (1, ?, ?)", [seq, row["hash"]])
        if self.journal:
            with contextlib.suppress(ValueError, OSError):  # a closed log stream must not fail the record
                self.log.info("access", **{k: v for k, v in row.items() if k != "prev_hash"})
        return seq

    def verify(self) -> list[Problem]:
        """Every problem in the chain; an empty list means the log is intact."""
        rows = self.store.query(f"SELECT seq, prev_hash, hash, {', '.join(HASHED_FIELDS)} FROM access_log ORDER BY seq")
        head = self.store.query("SELECT seq, hash FROM audit_head WHERE id = 1")
        return find_problems(rows, head[0] if head else None)

    def show(
        self,
        user: str | None = None,
        since: str | None = None,
        until: str | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[AccessRecord]:
        """Records filtered by user, UTC time range [since, until) and action (``search*`` globs)."""
        where, params = _filters(user=user, since=since, until=until, action=action)
        sql = f"SELECT * FROM access_log {where} ORDER BY seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [AccessRecord(**row) for row in self.store.query(sql, params)]

    def get(self, seq: int) -> AccessRecord:
        return AccessRecord(**self.store.query("SELECT * FROM access_log WHERE seq = ?", [seq])[0])

    def find(self, seq: int) -> AccessRecord | None:
        """The record ``seq``, or None when this log has none (a bundle from another unit)."""
        rows = self.store.query("SELECT * FROM access_log WHERE seq = ?", [seq])
        return AccessRecord(**rows[0]) if rows else None

    def count(self) -> int:
        return self.store.query("SELECT count(*) AS n FROM access_log")[0]["n"]


def _filters(**conditions: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    sql = {"user": "username = ?", "since": "ts >= ?", "until": "ts < ?", "action": "action GLOB ?"}
    for key, value in conditions.items():
        if value:
            clauses.append(sql[key])
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def format_record(r: AccessRecord) -> str:
    why = " ".join(x for x in (f"case {r.case_number}" if r.case_number else "", r.reason or "") if x)
    return f"{r.seq:>6}  {r.ts[:19]}Z  {r.username or '-':<12} {r.action:<18} {r.records:>6}  {why}  {r.query}"
