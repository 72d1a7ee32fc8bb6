"""Hotlist hits become alerts: stored first, then handed to whoever sends them.

An alert row is complete when written: its ``payload`` column is the JSON the
uplink publishes as-is (QoS 1, ahead of the read backlog) and its
``published_at`` stays null until the broker acknowledges it. One alert is
made per read, for its best match, with the other matches listed; a plate that
alerted within ``alert_repeat_window_s`` does not alert again.
Matching and storing run in a worker thread: a slow match (a large list, a
busy disk) must not stall the event loop, which also answers status and SIGTERM.
Every alert says that the hit must be verified before any enforcement action.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Collection
from datetime import timedelta
from enum import StrEnum
from typing import Any

from alprd.config import Config
from alprd.hotlist.hotlist import Hotlist, Match
from alprd.log import get_logger
from alprd.records import Read, iso, parse_iso, utc_now
from alprd.store import Store

VERIFY_INSTRUCTION = (
    "UNVERIFIED HOTLIST HIT. Confirm the plate, state and record through NCIC/state systems "
    "before any enforcement action. A hotlist match alone is not grounds to stop or act."
)
PAYLOAD_FORMAT = "alprd-alert/1"
MAX_LISTED_MATCHES = 5
ENTRY_FIELDS = ("pattern", "state", "category", "priority", "source", "case_number", "entered",
                "expires", "note", "officer_entered")

AlertListener = Callable[[dict[str, Any]], None]


class Disposition(StrEnum):
    CONFIRMED = "confirmed"  # after verification through NCIC / the state system
    MISREAD = "misread"
    WRONG_STATE = "wrong_state"
    NOT_ACTIONABLE = "not_actionable"
    NO_ACTION = "no_action"


def _describe(m: Match) -> dict[str, Any]:
    e = {k: m.entry.get(k) for k in ENTRY_FIELDS}
    e["officer_entered"] = bool(e["officer_entered"])
    return {"kind": m.kind.label, **e}


def build_alert(read: Read, matches: list[Match], hotlist_version: int, when: str | None = None) -> dict[str, Any]:
    """The alert row for a read and its ranked matches (pure; ``payload`` is the message)."""
    best = matches[0]
    alert_id = str(uuid.uuid4())
    gps = None
    if read.lat is not None and read.lon is not None:
        gps = {"lat": read.lat, "lon": read.lon, "speed_kmh": read.speed_kmh,
               "heading_deg": read.heading_deg, "fix_ts": read.gps_fix_ts, "stale": read.gps_stale}
    payload = {
        "format": PAYLOAD_FORMAT,
        "alert_id": alert_id,
        "read_id": read.id,
        "device_id": read.device_id,
        "camera_id": read.camera_id,
        "plate": read.plate,
        "read_confidence": round(read.confidence, 3),
        "seen_at": read.ts,
        "alerted_at": when or utc_now(),
        "match": _describe(best),
        "other_matches": [_describe(m) for m in matches[1:MAX_LISTED_MATCHES]],
        "hotlist_version": hotlist_version,
        "gps": gps,
        "crop_jpeg_b64": base64.b64encode(read.crop_jpeg).decode() if read.crop_jpeg else None,
        "verify": VERIFY_INSTRUCTION,
    }
    e = best.entry
    return {
        "id": alert_id, "read_id": read.id, "plate": read.plate, "pattern": e["pattern"],
        "match_kind": best.kind.label, "category": e["category"], "priority": e["priority"],
        "case_number": e["case_number"], "note": e["note"], "ts": read.ts,
        "payload": json.dumps(payload, separators=(",", ":")), "published_at": None,
    }


class Alerter:
    """Matches each committed read, stores an alert, tells the listeners."""

    def __init__(self, store: Store, hotlist: Hotlist, config: Config):
        self.store = store
        self.hotlist = hotlist
        self.window_s = config.hotlist.alert_repeat_window_s
        self._listeners: list[AlertListener] = []
        self.alerts = 0
        self.suppressed = 0
        self.log = get_logger("alprd.hotlist.alerts")

    def on_alert(self, listener: AlertListener) -> None:
        """Call ``listener`` with each stored alert row (e.g. the uplink's wake-up), in the order registered."""
        self._listeners.append(listener)

    def _recent(self, plate: str, pattern: str, ts: str) -> bool:
        since = iso(parse_iso(ts) - timedelta(seconds=self.window_s))
        return bool(self.store.query(
            "select 1 from alerts where (plate = ? or pattern = ?) and ts >= ? limit 1",
            [plate, pattern, since],
        ))

    def record(self, read: Read) -> dict[str, Any] | None:
        """Match a committed read and store its alert (blocking); None when no new alert."""
        matches = self.hotlist.match(read.plate, read.candidates)
        if not matches:
            return None
        if self.window_s and self._recent(read.plate, matches[0].entry["pattern"], read.ts):
            self.suppressed += 1
            return None
        row = build_alert(read, matches, self.hotlist.index.version)
        with self.store.transaction() as db:
            db["alerts"].insert(row)
        self.alerts += 1
        self.log.warning("hotlist_alert", alert_id=row["id"], plate=read.plate, kind=row["match_kind"],
                         category=row["category"], priority=row["priority"])
        return row

    async def on_read(self, read: Read) -> dict[str, Any] | None:
        """Read listener: ``record`` in a worker thread, then tell the listeners (on the loop).

        The daemon awaits each read's listeners in turn, so one match runs at a time and
        alerts keep the order of the reads.
        """
        row = await asyncio.to_thread(self.record, read)
        if row is None:
            return None
        for listener in self._listeners:
            try:
                listener(row)
            except Exception as err:  # noqa: BLE001 - the alert is stored; a listener bug must not lose it
                self.log.error("alert_listener_failed", error=str(err))
        return row

    def status(self) -> dict[str, Any]:
        return {"alerts": self.alerts, "suppressed_repeats": self.suppressed}


def unpublished_alerts(store: Store, limit: int, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
    """``id`` and ``payload`` of alerts the department has not receipted yet, oldest first, less ``exclude``."""
    return store.query(
        "select id, payload from alerts where published_at is null and payload is not null "
        "and id not in (select value from json_each(?)) order by ts, id limit ?",
        [json.dumps(list(exclude)), limit],
    )


def count_unpublished(store: Store) -> int:
    return store.query("select count(*) as n from alerts where published_at is null and payload is not null")[0]["n"]


def mark_published(store: Store, alert_id: str) -> None:
    """The broker acknowledged the alert: it is delivered, and never sent again."""
    with store.transaction() as db:
        db.execute("update alerts set published_at = ? where id = ?", [utc_now(), alert_id])


def set_disposition(store: Store, alert_id: str, disposition: Disposition, by: str, note: str = "") -> bool:
    """Record an officer's disposition of an alert as a new history entry (a change never overwrites the
    earlier one) and make it the alert's current one; False if there is no such alert."""
    now = utc_now()
    with store.transaction() as db:
        cur = db.conn.execute(
            "update alerts set disposition = ?, disposition_by = ?, disposition_at = ?, disposition_note = ? "
            "where id = ?", [disposition.value, by, now, note or None, alert_id],
        )
        if cur.rowcount != 1:
            return False
        db["alert_dispositions"].insert({"id": str(uuid.uuid4()), "alert_id": alert_id,
                                         "disposition": disposition.value, "note": note or "", "user": by,
                                         "ts": now, "uploaded_at": None})
        return True


def disposition_history(store: Store, alert_id: str) -> list[dict[str, Any]]:
    """Every disposition recorded for an alert, oldest first (the last is the current one)."""
    return store.query("select id, disposition, note, user, ts, uploaded_at from alert_dispositions "
                       "where alert_id = ? order by ts, rowid", [alert_id])


def alert_ids_starting(store: Store, prefix: str, limit: int = 2) -> list[str]:
    """Ids of alerts that start with ``prefix`` (a command takes a short, unique prefix).

    Compared with ``substr``, not ``LIKE``: a ``%`` or ``_`` in the prefix is no wildcard.
    """
    return [r["id"] for r in store.query("select id from alerts where substr(id, 1, ?) = ? limit ?",
                                         [len(prefix), prefix, limit])]


_LISTED = ("id, read_id, plate, pattern, match_kind, category, priority, case_number, note, ts, "
           "published_at, disposition, disposition_by, disposition_at, disposition_note")


def alerts_after(store: Store, rowid: int, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    """Alerts stored after ``rowid`` (0: all), in the order they were stored, and the last one's rowid
    (``alert list --follow`` polls with it)."""
    rows = store.query(f"select rowid as seq_, {_LISTED} from alerts where rowid > ? order by rowid limit ?",
                       [rowid, limit])
    return [{k: v for k, v in r.items() if k != "seq_"} for r in rows], (rows[-1]["seq_"] if rows else rowid)


def last_alert_rowid(store: Store) -> int:
    return store.query("select coalesce(max(rowid), 0) as n from alerts")[0]["n"]


def list_alerts(store: Store, since: str | None = None, open_only: bool = False,
                limit: int = 100) -> list[dict[str, Any]]:
    """Newest alerts first, without payload (it holds the crop)."""
    where, params = ["1 = 1"], []
    if since:
        where.append("ts >= ?")
        params.append(since)
    if open_only:
        where.append("disposition is null")
    return store.query(f"select {_LISTED} from alerts where {' and '.join(where)} order by ts desc limit ?",
                       [*params, limit])
