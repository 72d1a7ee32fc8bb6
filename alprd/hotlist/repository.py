"""The hotlist in SQLite: the department list, officer-entered plates and list metadata.

A whole department list (import, sync snapshot) is written in chunks of a few
thousand rows under a new *generation* number, then made current by one tiny
transaction that also bumps ``revision``; the old generation is then deleted
in chunks. Readers only see the current generation, so they see the old list
or the new one, never half, and the daemon's own writes (reads, alerts) never
wait more than one chunk for the write lock, even for a million-row list.
Deltas and officer entries are small and change the current list directly.
Officer-entered plates (generation 0) survive department list changes.

The list's ``version`` only goes forward. A list received from the department
keeps the department's version and list id. A list changed here (an import, a
shared BOLO) gets the next version, under this database's own list id, and its
changed patterns go to ``hotlist_changes`` so a publish can send a delta; a
change that changes nothing keeps the version.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

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
_VALUES = ", ".join(_COLUMNS[:9])  # what an entry is, for telling a changed list from an unchanged one
_DEPARTMENT = "officer_entered = 0 and generation = ?"
S = TypeVar("S")
T = TypeVar("T")


@dataclass(frozen=True)
class ListMeta:
    version: int  # the department list's version (sync refuses anything not newer)
    revision: int  # bumped by every change, officer-entered ones included
    updated_at: str | None  # when the department list last changed
    source: str
    entries: int  # department and officer entries in use
    list_id: str = ""  # whose list it is: a delta applies only to the list it was made from
    changes_since: int = 0  # hotlist_changes covers every version after this one


@dataclass(frozen=True)
class ListChange:
    """What a change made here did to the department list: an import's or a BOLO share's summary."""

    version: int  # after the change; ``previous`` when nothing changed
    previous: int
    added: int
    removed: int
    unchanged: int

    @property
    def changed(self) -> bool:
        return self.version != self.previous


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


def _generation(store: Store) -> int:
    rows = store.query("select value from hotlist_meta where key = 'generation'")
    return int(rows[0]["value"]) if rows else 0


def meta(store: Store) -> ListMeta:
    kv = {r["key"]: r["value"] for r in store.query("select key, value from hotlist_meta")}
    return ListMeta(int(kv.get("version", 0)), int(kv.get("revision", 0)), kv.get("updated_at"),
                    kv.get("source", ""), int(kv.get("entries", 0)), kv.get("list_id", ""),
                    int(kv.get("changes_since", 0)))


def _text(db, key: str) -> str:
    row = db.conn.execute("select value from hotlist_meta where key = ?", [key]).fetchone()
    return row[0] if row else ""


def _local_version(db, previous: int, requested: int | None, patterns: Iterable[str]) -> int:
    """Record a change made here (in its transaction): the next version, or ``requested`` (a jump
    forward), under this database's own list id; the changed patterns go to the change log."""
    if requested is not None and requested <= previous:
        raise ValueError(f"version {requested} is not newer than the list in use (version {previous}): "
                         "versions only go forward (leave the version out to take the next one)")
    version = requested or previous + 1
    own = _text(db, "own_list_id") or uuid.uuid4().hex
    values: dict[str, Any] = {"version": version, "own_list_id": own, "list_id": own}
    if _text(db, "list_id") != own or version > previous + 1:
        values["changes_since"] = version  # the log cannot tell a delta from a list it did not make
    db.conn.executemany("insert into hotlist_changes (version, pattern) values (?, ?)",
                        [(version, p) for p in set(patterns)])
    _set(db, **values)
    return version


def _purge(store: Store, below: int, only: int | None = None) -> None:
    """Delete department rows of generations below ``below`` (or exactly ``only``), chunk by chunk."""
    cond, arg = ("generation = ?", only) if only is not None else ("generation < ?", below)
    while True:
        with store.transaction() as db:
            n = db.conn.execute(
                f"delete from hotlist where id in (select id from hotlist where officer_entered = 0 "
                f"and generation > 0 and {cond} limit {CHUNK_ROWS})", [arg]).rowcount
        if n < CHUNK_ROWS:
            return


def _swap(store: Store, entries: Iterable[Entry], finish: Callable[[Any, int, int, int, S], tuple[bool, T]],
          survey: Callable[[int], S] = lambda new: None) -> T:
    """Write ``entries`` under a new generation; ``survey(new)`` then looks at it (reads only, no
    write lock held), and ``finish(db, current, new, count, surveyed)``, in the last transaction,
    says whether to make it current (and what to return)."""
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
        surveyed = survey(generation)
        with store.transaction() as db:
            current = _get(db, "generation")
            if current > generation:
                raise ValueError("a newer list was stored meanwhile; this one is dropped")
            keep, result = finish(db, current, generation, n, surveyed)
    except BaseException:
        _purge(store, 0, only=generation)
        raise
    if keep:
        _purge(store, below=generation)
    else:
        _purge(store, 0, only=generation)
    return result


def install_snapshot(store: Store, entries: Iterable[Entry], source: str, version: int, list_id: str) -> int:
    """Swap in the department's list as received (a sync snapshot); readers see it all at once.
    Returns its size."""
    def finish(db, current: int, new: int, n: int, surveyed: None) -> tuple[bool, int]:
        _bump(db, True, generation=new, source=source, version=version, list_id=list_id)
        return True, n

    return _swap(store, entries, finish)


def _diff(store: Store, old: int, new: int) -> tuple[int, int, int, list[str]]:
    """(added, removed, unchanged, patterns changed) between two generations, in SQL (a million rows),
    as a read: the daemon's writers do not wait for it."""
    rows = f"select {_VALUES} from hotlist where {_DEPARTMENT}"

    def count(op: str, first: int, second: int) -> int:
        return store.query(f"select count(*) as n from ({rows} {op} {rows}) as c", [first, second])[0]["n"]

    patterns = [r["pattern"] for r in store.query(
        f"select pattern from ({rows} except {rows}) as a union select pattern from ({rows} except {rows}) as b",
        [new, old, old, new])]
    return count("except", new, old), count("except", old, new), count("intersect", old, new), patterns


def replace_department_list(store: Store, entries: Iterable[Entry], source: str,
                            version: int | None = None) -> ListChange:
    """Swap in a whole new department list made here (an import); readers see it all at once.

    A list that differs gets the next version (or ``version``, a jump forward); one that does
    not is dropped and the version stays, unless ``version`` asks for the jump. What changed
    is worked out before the last transaction, which refuses if the list changed meanwhile."""
    start = meta(store)
    old = _generation(store)

    def finish(db, current: int, new: int, n: int, diff: tuple[int, int, int, list[str]]) -> tuple[bool, ListChange]:
        previous = _get(db, "version")
        if (previous, current) != (start.version, old):
            raise ValueError(f"the list changed while this one was read in (version {start.version} is now "
                             f"{previous}): nothing was changed; import again")
        added, removed, unchanged, patterns = diff
        if not (added or removed or version is not None):
            return False, ListChange(previous, previous, 0, 0, unchanged)
        now = _local_version(db, previous, version, patterns)
        _bump(db, True, generation=new, source=source)
        return True, ListChange(now, previous, added, removed, unchanged)

    return _swap(store, entries, finish, lambda new: _diff(store, old, new))


def _current_generation(db) -> int:
    """The department list's generation, started (empty) if there is none yet."""
    generation = _get(db, "generation")
    if generation == 0:
        generation = _get(db, "next_generation", 1)
        _set(db, next_generation=generation + 1, generation=generation)
    return generation


def replace_sources(store: Store, entries: Iterable[Entry], sources: Iterable[str]) -> ListChange:
    """Replace the department entries of these sources (shared BOLOs, ``bolo:ID``) by ``entries``, here."""
    sources, entries = list(dict.fromkeys(sources)), list(entries)
    with store.transaction() as db:
        generation, previous = _current_generation(db), _get(db, "version")
        where = f"{_DEPARTMENT} and source in ({', '.join('?' * len(sources))})"
        old = Counter(db.conn.execute(f"select {_VALUES} from hotlist where {where}", [generation, *sources]))
        new = Counter(_row(e, generation)[:9] for e in entries)
        added, removed = new - old, old - new
        if not (added or removed):
            return ListChange(previous, previous, 0, 0, sum(new.values()))
        db.conn.execute(f"delete from hotlist where {where}", [generation, *sources])
        db.conn.executemany(_INSERT, [_row(e, generation) for e in entries])
        version = _local_version(db, previous, None, [r[0] for r in (*added, *removed)])
        _bump(db, True)
    return ListChange(version, previous, sum(added.values()), sum(removed.values()), sum((old & new).values()))


def department_entries(store: Store, source_prefix: str = "", changed_after: int | None = None) -> Iterator[Entry]:
    """The department list in use (officer entries left out): all of it, the entries whose source
    starts with ``source_prefix``, or those of patterns changed after version ``changed_after``."""
    sql = (f"select {_VALUES} from hotlist where officer_entered = 0 and generation = {_GENERATION} "
           "and substr(source, 1, ?) = ?")
    params: list[Any] = [len(source_prefix), source_prefix]
    if changed_after is not None:
        sql += " and pattern in (select pattern from hotlist_changes where version > ?)"
        params.append(changed_after)
    for r in store.query(f"{sql} order by id", params):
        yield Entry(**r)


def changed_patterns(store: Store, after: int) -> list[str]:
    """The patterns changed after version ``after`` (what a delta from it removes and re-adds)."""
    return [r["pattern"] for r in store.query(
        "select distinct pattern from hotlist_changes where version > ? order by pattern", [after])]


def published(store: Store, version: int) -> None:
    """Version ``version`` is the broker's retained snapshot: deltas start from it, older changes go."""
    with store.transaction() as db:
        db.conn.execute("delete from hotlist_changes where version <= ?", [version])
        _set(db, changes_since=max(version, _get(db, "changes_since")))


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
        entry_id = db["hotlist"].insert(dict(zip(_COLUMNS, _row(entry, 0), strict=True))).last_pk
        _bump(db, False)
        if entered_by:
            db["bolo_uploads"].insert({
                "id": str(uuid.uuid4()), "plate": entry.pattern, "category": entry.category,
                "case_number": entry.case_number, "note": entry.note, "priority": entry.priority,
                # an entry is valid through its expiry day
                "expires_at": f"{entry.expires}T23:59:59.999999Z" if entry.expires else None,
                "entered_by": entered_by, "entered_at": utc_now(), "uploaded_at": None})
        return entry_id


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
