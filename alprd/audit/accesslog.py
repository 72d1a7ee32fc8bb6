"""The access log: who touched stored data, when, why, and how much of it.

Tamper-evident by a hash chain: each record's ``hash`` covers its own fields and
the ``prev_hash`` of the record before it, so editing, deleting or reordering a
record breaks the chain at a place :func:`find_problems` can name. Triggers
refuse UPDATE and DELETE on ``access_log``; the chain is what catches someone
who drops them.

A plain hash chain can be rebuilt by anyone who can write the file, so each
record also carries a ``mac``: HMAC-SHA256 under the unit's audit secret, a file
outside the database (:mod:`alprd.keys`). The newest record's seq and hash are
kept in ``audit_head`` and, MAC-ed, in the head anchor file beside the secret;
the anchor only moves forward, so cutting records off the end, or wiping the
table, shows. The newest record's seq and MAC also go to the department with
each heartbeat, which catches a unit whose database, secret and anchor were all
replaced (``alprd audit verify --head SEQ:MAC``). Records written before the
log was keyed (older databases) keep no MAC: :func:`check_chain` says up to
which record the chain is only hash-linked. In the daemon
(``journal=True``) every record also goes to journald, a copy outside the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from alprd.keys import KeyFileError, create_secret, read_file, read_secret, replace_file
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
    mac: str | None = None  # None: written before the log was keyed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Problem:
    """One break in the chain, naming the record (by seq) it concerns."""

    seq: int
    kind: Literal["edited", "deleted", "reordered", "broken", "forged", "unkeyed", "anchor", "unverifiable"]
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


def record_mac(secret: bytes, seq: int, record_hash_: str) -> str:
    """HMAC of a record's place and hash; the hash already covers every record before it."""
    return hmac.new(secret, f"{seq}\n{record_hash_}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """The head remembered outside the database: the newest record, and where keying began."""

    seq: int
    hash: str
    keyed_from: int

    def _tag(self, secret: bytes) -> str:
        body = json.dumps(["alprd-audit-head", self.seq, self.hash, self.keyed_from])
        return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()

    def dump(self, secret: bytes) -> bytes:
        return json.dumps({**asdict(self), "tag": self._tag(secret)}).encode()

    @classmethod
    def load(cls, text: bytes, secret: bytes) -> Anchor:
        """The anchor in ``text``; ValueError unless this unit's secret vouches for it."""
        try:
            doc = json.loads(text)
            anchor = cls(int(doc["seq"]), str(doc["hash"]), int(doc["keyed_from"]))
            tag = str(doc["tag"])
        except (ValueError, KeyError, TypeError):
            raise ValueError("unreadable") from None
        if not hmac.compare_digest(tag, anchor._tag(secret)):
            raise ValueError("not signed by this unit's secret")
        return anchor


def _spans(seqs: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs: a chain re-hashed end to end is one problem, not thousands."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _span_text(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}..{last}"


def find_key_problems(rows: Sequence[dict[str, Any]], secret: bytes | None,
                      anchor_text: bytes | None) -> tuple[list[Problem], Anchor | None]:
    """Check the MACs and the head anchor (pure); returns the problems and the anchor, if it is sound.

    Once the log is keyed (from the anchor's ``keyed_from``, else the first MAC),
    every record must carry this unit's MAC: a missing one was stripped, a wrong
    one re-hashed or written by someone without the secret.
    """
    last = rows[-1]["seq"] if rows else 0
    first_mac = next((r["seq"] for r in rows if r.get("mac")), None)
    if secret is None:
        if first_mac is None and anchor_text is None:
            return [], None  # a log from before keying, on a unit that has not written since
        return [Problem(first_mac or 1, "unverifiable",
                        "the access-log secret is missing (the file named by store.audit_secret): keyed records "
                        "cannot be checked; restore it from the unit's backup")], None
    problems: list[Problem] = []
    anchor = None
    if anchor_text is None:
        problems.append(Problem(last, "anchor", "the head anchor beside the access-log secret is missing: "
                                                "records may have been cut off the end of the log"))
    else:
        try:
            anchor = Anchor.load(anchor_text, secret)
        except ValueError as err:
            problems.append(Problem(last, "anchor", f"the head anchor beside the access-log secret was altered "
                                                    f"or replaced ({err})"))
    keyed_from = anchor.keyed_from if anchor else first_mac
    if keyed_from is None:
        return problems, anchor
    unkeyed = [r["seq"] for r in rows if r["seq"] >= keyed_from and not r.get("mac")]
    forged = [r["seq"] for r in rows if r.get("mac") and r["mac"] != record_mac(secret, r["seq"], r["hash"])]
    problems += [Problem(a, "unkeyed", f"{_span_text(a, b)}: no MAC, although the log is keyed from record "
                                       f"{keyed_from}: re-hashed or inserted without this unit's secret")
                 for a, b in _spans(unkeyed)]
    problems += [Problem(a, "forged", f"{_span_text(a, b)}: the MAC is not this unit's: re-hashed or written "
                                      "without its secret") for a, b in _spans(forged)]
    if anchor is not None:
        at = {r["seq"]: r for r in rows}
        if anchor.seq > last:
            problems.append(Problem(last + 1, "deleted", f"record(s) {last + 1}..{anchor.seq} deleted from the end "
                                                         f"of the log (the head anchor outside the database is at "
                                                         f"record {anchor.seq})"))
        elif anchor.seq in at and at[anchor.seq]["hash"] != anchor.hash:
            problems.append(Problem(anchor.seq, "edited", f"record {anchor.seq} was replaced: the head anchor "
                                                          "outside the database remembers another"))
    return problems, anchor


def parse_reported_head(text: str) -> tuple[int, str]:
    """``SEQ:MAC`` as the department's copy of a heartbeat's ``audit_head`` gives it."""
    seq, _, mac = text.partition(":")
    if not seq.isdigit() or len(mac) != 64:
        raise ValueError(f"--head {text!r}: write SEQ:MAC, the seq and mac of the audit_head in the unit's "
                         "last heartbeat at the department")
    return int(seq), mac.lower()


def find_reported_head_problems(rows: Sequence[dict[str, Any]], seq: int, mac: str) -> list[Problem]:
    """Compare with the head the department last saw (pure): catches a log replaced with its keys."""
    row = next((r for r in rows if r["seq"] == seq), None)
    if row is None:
        return [Problem(seq, "deleted", f"record {seq}, which the department saw in a heartbeat, is not in the log: "
                                        "the log was cut or wiped")]
    if row.get("mac") != mac:
        return [Problem(seq, "edited", f"record {seq} is not the one the department saw in a heartbeat: the log "
                                       "was rewritten")]
    return []


@dataclass(frozen=True)
class LogCheck:
    """What ``audit verify`` found, and how far each safeguard reaches."""

    records: int
    last_seq: int
    keyed_from: int | None
    anchored_at: int | None
    problems: list[Problem]

    def coverage(self) -> str:
        """Which part of the chain is keyed, in words."""
        if self.keyed_from is None or self.keyed_from > self.last_seq:
            keyed = "no record is keyed yet (written before the log was keyed): hash-linked only"
        elif self.keyed_from > 1:
            keyed = (f"records 1..{self.keyed_from - 1} hash-linked only (written before the log was keyed), "
                     f"{self.keyed_from}..{self.last_seq} keyed")
        else:
            keyed = f"records 1..{self.last_seq} keyed"
        anchor = f"head anchored at record {self.anchored_at}" if self.anchored_at is not None else "no sound anchor"
        return f"{keyed}; {anchor}"


def check_chain(rows: Sequence[dict[str, Any]], head: dict[str, Any] | None, secret: bytes | None,
                anchor_text: bytes | None, reported: tuple[int, str] | None = None) -> LogCheck:
    """Every check on the log (pure): chain, MACs, head anchor and, if given, the department's head."""
    problems = find_problems(rows, head)
    key_problems, anchor = find_key_problems(rows, secret, anchor_text)
    problems += key_problems
    if reported is not None:
        problems += find_reported_head_problems(rows, *reported)
    unique: dict[tuple[int, str], Problem] = {}  # the chain and the anchor may both see one cut
    for p in problems:
        unique.setdefault((p.seq, p.kind), p)
    first_mac = next((r["seq"] for r in rows if r.get("mac")), None)
    return LogCheck(len(rows), rows[-1]["seq"] if rows else 0, anchor.keyed_from if anchor else first_mac,
                    anchor.seq if anchor else None, sorted(unique.values(), key=lambda p: p.seq))


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
        self.secret_path: Path = store.audit_secret
        self.anchor_path = self.secret_path.with_name(self.secret_path.name + ".head")
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
        """Append one record (atomically with its head anchors); returns its seq."""
        fields = {
            "ts": utc_now(), "username": username, "action": action, "query": _query_text(query),
            "case_number": case_number or None, "reason": reason or None, "records": int(records),
        }
        with self.store.transaction() as db:  # the write lock: other processes append too
            secret, created = self._secret(db)
            last = db.execute("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            digest = record_hash(prev, fields)
            row = {"seq": seq, **fields, "prev_hash": prev, "hash": digest, "mac": record_mac(secret, seq, digest)}
            db["access_log"].insert(row)
            db.execute("INSERT INTO audit_head(id, seq, hash) VALUES (1, ?, ?) "
                       "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", [seq, digest])
            self._advance_anchor(secret, Anchor(seq, digest, seq) if created else None, seq, digest)
        if self.journal:
            with contextlib.suppress(ValueError, OSError):  # a closed log stream must not fail the record
                self.log.info("access", **{k: v for k, v in row.items() if k != "prev_hash"})
        return seq

    def _secret(self, db: sqlite_utils.Database) -> tuple[bytes, bool]:
        """The audit secret, and whether it was made just now (only for a log never keyed)."""
        secret = read_secret(self.secret_path)
        if secret is not None:
            return secret, False
        keyed = db.execute("SELECT min(seq) FROM access_log WHERE mac IS NOT NULL").fetchone()[0]
        if keyed is not None or self.anchor_path.exists():
            raise KeyFileError(f"{self.secret_path}: the access-log secret is missing, but the log was keyed with "
                               f"it{f' from record {keyed}' if keyed else ''}: restore the file from the unit's "
                               "backup; nothing is recorded, so no data can be accessed, until then")
        return create_secret(self.secret_path), True

    def _advance_anchor(self, secret: bytes, new: Anchor | None, seq: int, digest: str) -> None:
        """Move the anchor forward to this record (inside the write lock, so in order).

        A missing, unsound or later anchor is left as it is: it is the evidence
        that ``verify`` reports. Only a secret made just now brings a new one.
        """
        if new is None:
            text = read_file(self.anchor_path, "access-log head anchor")
            if text is None:
                return
            try:
                old = Anchor.load(text, secret)
            except ValueError:
                return
            if old.seq >= seq:
                return
            new = Anchor(seq, digest, old.keyed_from)
        replace_file(self.anchor_path, new.dump(secret))

    def init_secret(self) -> bool:
        """Key the log now (at install) rather than at its next record; False if it is keyed already."""
        with self.store.transaction() as db:
            secret, created = self._secret(db)
            if created:
                last = db.execute("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1").fetchone()
                seq, digest = last if last else (0, GENESIS)
                replace_file(self.anchor_path, Anchor(seq, digest, seq + 1).dump(secret))
        return created

    def check(self, reported: tuple[int, str] | None = None) -> LogCheck:
        """Check everything without writing anything; ``reported`` is the department's (seq, mac)."""
        rows = self.store.query(
            f"SELECT seq, prev_hash, hash, mac, {', '.join(HASHED_FIELDS)} FROM access_log ORDER BY seq")
        head = self.store.query("SELECT seq, hash FROM audit_head WHERE id = 1")
        anchor_text = read_file(self.anchor_path, "access-log head anchor")
        return check_chain(rows, head[0] if head else None, read_secret(self.secret_path), anchor_text, reported)

    def verify(self) -> list[Problem]:
        """Every problem in the log; an empty list means it is intact."""
        return self.check().problems

    def head(self) -> dict[str, Any]:
        """The newest record's seq and MAC, for the department's copy (the heartbeat)."""
        rows = self.store.query("SELECT seq, mac FROM access_log ORDER BY seq DESC LIMIT 1")
        return rows[0] if rows else {"seq": 0, "mac": None}

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
