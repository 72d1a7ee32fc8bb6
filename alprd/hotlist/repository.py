"""The hotlist in SQLite: the department list, officer-entered plates and list metadata.

A whole department list (import, sync snapshot) is written in chunks of a few
thousand rows under a new *generation* number, then made current by one tiny
transaction that also bumps ``revision``; the old generation is then deleted
in chunks. Readers only see the current generation, so they see the old list
or the new one, never half, and the daemon's own writes (reads, alerts) never
wait more than one chunk for the write lock, even for a million-row list.
Deltas and officer entries are small and change the current list directly.
Officer-entered plates (generation 0) survive department list changes.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from typing import Any

from alprd.hotlist.entries import Entry, today
from alprd.records import utc_now
from alprd.store import Store

CHUNK_ROWS = 5000
_COLUMNS = ("pattern", "state", "category", "priority", "source", "case_number", "entered",
            "expires", "note", "officer_entered", "generation")
_INSERT = f"insert into hotlist ({', '.join(_COLUMNS)}) values ({', '.join('?' * len(_COLUMNS))})"
_GENERATION = "(select cast(value as integer) from hotlist_meta where key = 'generation')"
_CURRENT = f"(officer_entered = 1 or generation = {_GENERATION})"
_UNEXPIRED = "(expires is null or expires = '' or expires >= ?)"


@dataclass(frozen=True)
class ListMeta:
    version: int  # the department list's version (sync refuses anything not newer)
    revision: int  # bumped by every change, officer-entered ones included
    updated_at: str | None  # when the department list last changed
    source: str
    entries: int  # department and officer entries in use


def _row(e: Entry, generation: int) -> tuple[Any, ...]:
    return (e.pattern, e.state, e.category, e.priority, e.source, e.case_number, e.entered,
            e.expires, e.note, int(e.officer_entered), generation)


def _get(db, key: str, default: int = 0) -> int:
    row = db.conn.execute("select value from hotlist_meta where key = ?", [key]).fetchone()
    return int(row[0]) if row else default


def _set(db, **values: Any) -> None:
    db.conn.executemany(
        "insert into hotlist_meta (key, value) values (?, ?) "
        "on conflict(key) do update set value = excluded.value",
        [(k, str(v)) for k, v in values.items()],
    )


def _bump(db, department_changed: bool, **values: Any) -> None:
    """Record a change (in its transaction): new revision, list size, and what else is given."""
    values["revision"] = _get(db, "revision") + 1
    if department_changed:
        values["updated_at"] = utc_now()
    _set(db, **values)
    _set(db, entries=db.conn.execute(f"select count(*) from hotlist where {_CURRENT}").fetchone()[0])


def meta(store: Store) -> ListMeta:
    kv = {r["key"]: r["value"] for r in store.query("select key, value from hotlist_meta")}
    return ListMeta(int(kv.get("version", 0)), int(kv.get("revision", 0)), kv.get("updated_at"),
                    kv.get("source", ""), int(kv.get("entries", 0)))


def _purge(store: Store, below: int, only: int | None = None) -> None:
    """Delete department rows of generations below ``below`` (or exactly ``only``), chunk by chunk."""
    cond, arg = ("generation = ?", only) if only is not None else ("generation < ?", below)
    while True:
        with store.transaction() as db:
            n = db.conn.execute(
                f"delete from hotlist where rowid in (select rowid from hotlist where officer_entered = 0 "
                f"and generation > 0 and {cond} limit {CHUNK_ROWS})", [arg]).rowcount
        if n < CHUNK_ROWS:
            return


def replace_department_list(store: Store, entries: Iterable[Entry], source: str,
                            version: int | None = None) -> int:
    """Swap in a whole new department list; readers see it all at once. Returns its size."""
    with store.transaction() as db:
        generation = _get(db, "next_generation", 1)
        _set(db, next_generation=generation + 1)
    rows: Iterator[tuple[Any, ...]] = (_row(e, generation) for e in entries)
    n = 0
    try:
        while chunk := list(islice(rows, CHUNK_ROWS)):
            with store.transaction() as db:
                db.conn.executemany(_INSERT, chunk)
            n += len(chunk)
        with store.transaction() as db:
            if _get(db, "generation") > generation:
                raise RuntimeError("a newer list was stored meanwhile; this one is dropped")
            extra = {"version": version} if version is not None else {}
            _bump(db, True, generation=generation, source=source, **extra)
    except BaseException:
        _purge(store, 0, only=generation)
        raise
    _purge(store, below=generation)
    return n


def apply_delta(store: Store, add: Iterable[Entry], remove: Iterable[str], version: int,
                source: str) -> tuple[int, int]:
    """Remove current department entries by pattern, add new ones; returns (added, removed)."""
    with store.transaction() as db:
        generation = _get(db, "generation")
        removed = db.conn.executemany(
            "delete from hotlist where officer_entered = 0 and generation = ? and pattern = ?",
            [(generation, p) for p in remove],
        ).rowcount
        added = db.conn.executemany(_INSERT, [_row(e, generation) for e in add]).rowcount
        _bump(db, True, source=source, version=version)
    return added, removed


def add_officer_entry(store: Store, entry: Entry, entered_by: str | None = None) -> int:
    """Put an officer's plate in service at once; with ``entered_by``, also queue it as a BOLO for the
    department (the uplink sends ``bolo_uploads``)."""
    with store.transaction() as db:
        cur = db.conn.execute(_INSERT, _row(entry, 0))
        _bump(db, False)
        if entered_by:
            db["bolo_uploads"].insert({
                "id": str(uuid.uuid4()), "plate": entry.pattern, "category": entry.category,
                "case_number": entry.case_number, "note": entry.note, "priority": entry.priority,
                # an entry is valid through its expiry day
                "expires_at": f"{entry.expires}T23:59:59.999999Z" if entry.expires else None,
                "entered_by": entered_by, "entered_at": utc_now(), "uploaded_at": None})
        return cur.lastrowid


def remove_officer_entries(store: Store, pattern: str) -> int:
    with store.transaction() as db:
        n = db.conn.execute("delete from hotlist where officer_entered = 1 and pattern = ?", [pattern]).rowcount
        if n:
            _bump(db, False)
    return n


def list_entries(store: Store, officer_only: bool = True, pattern: str | None = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
    where, params = [_CURRENT], []
    if officer_only:
        where.append("officer_entered = 1")
    if pattern:
        where.append("pattern = ?")
        params.append(pattern)
    return store.query(f"select * from hotlist where {' and '.join(where)} order by id limit ?",
                       [*params, limit])


def entries_for(store: Store, patterns: Iterable[str]) -> list[dict[str, Any]]:
    """The current, unexpired entries with these exact patterns (index hits -> alerts)."""
    pats = list(dict.fromkeys(patterns))
    if not pats:
        return []
    return store.query(
        f"select * from hotlist where pattern in ({', '.join('?' * len(pats))}) and {_CURRENT} "
        f"and {_UNEXPIRED}", [*pats, today()],
    )


def snapshot_patterns(store: Store) -> tuple[int, int, list[str]]:
    """(revision, version, live patterns) read in one snapshot on a connection of its own,
    so building a big index neither blocks the daemon's writers nor sees half a change."""
    uri = f"{store.path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        conn.execute("begin")
        kv = dict(conn.execute("select key, value from hotlist_meta where key in ('revision', 'version')"))
        pats = [r[0] for r in conn.execute(
            f"select distinct pattern from hotlist where {_CURRENT} and {_UNEXPIRED}", [today()])]
        conn.execute("commit")
    return int(kv.get("revision", 0)), int(kv.get("version", 0)), pats
