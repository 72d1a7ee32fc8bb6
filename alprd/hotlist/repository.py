"""The hotlist in SQLite: the department list, officer-entered plates and list metadata.

Every change runs in one transaction and bumps ``revision`` in ``hotlist_meta``,
so other processes (the CLI, the sync) and the daemon's index agree on when the
list changed, and a reader sees the old list or the new one, never half.
The department list (``officer_entered = 0``) is replaced or patched by imports
and sync; officer-entered plates survive both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from alprd.hotlist.entries import Entry, today
from alprd.store import Store, utc_now

_COLUMNS = ("pattern", "state", "category", "priority", "source", "case_number", "entered",
            "expires", "note", "officer_entered")
_INSERT = f"insert into hotlist ({', '.join(_COLUMNS)}) values ({', '.join('?' * len(_COLUMNS))})"
_LIVE = "(expires is null or expires = '' or expires >= ?)"


@dataclass(frozen=True)
class ListMeta:
    version: int  # the department list's version (sync refuses anything not newer)
    revision: int  # bumped by every change, officer-entered ones included
    updated_at: str | None  # when the department list last changed
    source: str


def _rows(entries: Iterable[Entry]) -> Iterator[tuple[Any, ...]]:
    for e in entries:
        row = e.to_row()
        yield tuple(row[c] for c in _COLUMNS)


def _set_meta(db, **values: Any) -> None:
    db.conn.executemany(
        "insert into hotlist_meta (key, value) values (?, ?) "
        "on conflict(key) do update set value = excluded.value",
        [(k, str(v)) for k, v in values.items()],
    )


def _bump(db, department_changed: bool, **values: Any) -> None:
    rev = db.conn.execute("select value from hotlist_meta where key = 'revision'").fetchone()
    values["revision"] = int(rev[0]) + 1 if rev else 1
    if department_changed:
        values["updated_at"] = utc_now()
    _set_meta(db, **values)


def meta(store: Store) -> ListMeta:
    kv = {r["key"]: r["value"] for r in store.query("select key, value from hotlist_meta")}
    return ListMeta(int(kv.get("version", 0)), int(kv.get("revision", 0)), kv.get("updated_at"),
                    kv.get("source", ""))


def replace_department_list(store: Store, entries: Iterable[Entry], source: str,
                            version: int | None = None) -> int:
    """Swap in a whole new department list in one transaction; returns its size."""
    with store.transaction() as db:
        db.conn.execute("delete from hotlist where officer_entered = 0")
        n = db.conn.executemany(_INSERT, _rows(entries)).rowcount
        extra = {"version": version} if version is not None else {}
        _bump(db, True, source=source, **extra)
    return n


def apply_delta(store: Store, add: Iterable[Entry], remove: Iterable[str], version: int, source: str) -> tuple[int, int]:
    """Remove department entries by pattern, add new ones; returns (added, removed)."""
    with store.transaction() as db:
        removed = db.conn.executemany(
            "delete from hotlist where officer_entered = 0 and pattern = ?", [(p,) for p in remove]
        ).rowcount
        added = db.conn.executemany(_INSERT, _rows(add)).rowcount
        _bump(db, True, source=source, version=version)
    return added, removed


def add_officer_entry(store: Store, entry: Entry) -> int:
    with store.transaction() as db:
        cur = db.conn.execute(_INSERT, next(_rows([entry])))
        _bump(db, False)
        return cur.lastrowid


def remove_officer_entries(store: Store, pattern: str) -> int:
    with store.transaction() as db:
        n = db.conn.execute("delete from hotlist where officer_entered = 1 and pattern = ?", [pattern]).rowcount
        if n:
            _bump(db, False)
    return n


def list_entries(store: Store, officer_only: bool = True, pattern: str | None = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
    where, params = ["1 = 1"], []
    if officer_only:
        where.append("officer_entered = 1")
    if pattern:
        where.append("pattern = ?")
        params.append(pattern)
    return store.query(f"select * from hotlist where {' and '.join(where)} order by id limit ?",
                       [*params, limit])


def entries_for(store: Store, patterns: Iterable[str]) -> list[dict[str, Any]]:
    """The unexpired entries with these exact patterns (to turn index hits into alerts)."""
    pats = list(dict.fromkeys(patterns))
    if not pats:
        return []
    return store.query(
        f"select * from hotlist where pattern in ({', '.join('?' * len(pats))}) and {_LIVE}",
        [*pats, today()],
    )


def snapshot_patterns(store: Store) -> tuple[int, int, list[str]]:
    """(revision, version, live patterns) read in one snapshot on a connection of its own,
    so building a big index neither blocks the daemon's writers nor sees half a change."""
    uri = f"file:{store.path}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        conn.execute("begin")
        kv = dict(conn.execute("select key, value from hotlist_meta where key in ('revision', 'version')"))
        pats = [r[0] for r in conn.execute(f"select distinct pattern from hotlist where {_LIVE}", [today()])]
        conn.execute("commit")
    return int(kv.get("revision", 0)), int(kv.get("version", 0)), pats

