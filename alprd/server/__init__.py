"""The department's server: every unit's uploads in one database, under the same policy rules.

``alprd server`` runs the ingest receiver (:class:`alprd.uplink.ingest.Ingest`: MQTT QoS 1, each
message acknowledged only after its commit, a receipt to the unit) over :class:`FleetStore`, which
writes into the department's :class:`~alprd.store.Store` (PostgreSQL for a fleet, SQLite for a small
department), and purges it on the department's own retention schedule. The policy commands
(``search``, ``hold``, ``export``, ``release``, ``purge``, ``report``, ``audit``, ``users``) then work
on that database as they do on a unit, fleet-wide: the same tables, the same access log.

Every write is idempotent (read, alert, disposition and BOLO ids are primary keys; ``ON CONFLICT DO
NOTHING``), so a message delivered again after a crash, or taken by two servers sharing a
subscription, is stored once.
"""

from __future__ import annotations

import json
from typing import Any

from alprd.records import READ_FIELDS
from alprd.store import Store
from alprd.uplink.schema import Batch, RecordBatch
from alprd.uplink.wire import RECORD_KINDS

REFUSED_KEEP = 2048  # bytes of a refused message kept, to see what it was
_ALERT_COLUMNS = ("id", "read_id", "plate", "pattern", "match_kind", "category", "priority", "case_number", "note",
                  "ts", "payload", "device_id", "received_at")


def alert_row(alert_id: str, device_id: str, payload: str, received_at: str) -> dict[str, Any]:
    """An uploaded alert as an ``alerts`` row (pure): the columns the lists and the report use, from its
    payload (checked by the wire schema); the payload itself is kept whole."""
    body = json.loads(payload)
    body = body if isinstance(body, dict) else {}
    match = body.get("match") if isinstance(body.get("match"), dict) else {}
    return {"id": alert_id, "read_id": body.get("read_id"), "plate": body.get("plate"),
            "pattern": match.get("pattern"), "match_kind": match.get("kind"), "category": match.get("category"),
            "priority": match.get("priority"), "case_number": match.get("case_number"), "note": match.get("note"),
            "ts": body.get("seen_at"), "payload": payload, "device_id": device_id, "received_at": received_at}


def _insert(table: str, columns: tuple[str, ...] | list[str], conflict: str = "id") -> str:
    return (f"INSERT INTO {table} ({', '.join(_quoted(c) for c in columns)}) VALUES "
            f"({', '.join('?' * len(columns))}) ON CONFLICT({conflict}) DO NOTHING")


def _quoted(column: str) -> str:
    return f'"{column}"'  # "user" is a reserved word in PostgreSQL


def received_bolos(store: Store, ids: list[str]) -> list[dict[str, Any]]:
    """BOLOs that units uploaded, by id, as ``alprd.bolos/1`` records (``hotlist share-bolo --received``);
    an unknown id is an error naming it."""
    fields = RECORD_KINDS["bolos"][1]
    rows = store.query(f"SELECT {', '.join(fields)} FROM bolo_uploads WHERE id IN (SELECT value FROM json_each(?))",
                       [json.dumps(ids)])
    missing = sorted(set(ids) - {r["id"] for r in rows})
    if missing:
        raise ValueError(f"no BOLO uploaded with id {', '.join(missing)}: list them with "
                         "SELECT id, plate, case_number FROM bolo_uploads (or alprd hotlist share-bolo FILE)")
    return rows


class FleetStore:
    """:class:`alprd.uplink.ingest.IngestStore` on the department's store."""

    def __init__(self, store: Store):
        self.store = store
        self.write_errors = store.write_errors
        if store.dialect == "sqlite":  # an alert may arrive before its read's batch: no key from alerts to reads
            store.db.execute("PRAGMA foreign_keys = OFF")

    def _known(self, db: Any, table: str, ids: list[str]) -> set[str]:
        return {r[0] for r in db.execute(f"SELECT id FROM {table} WHERE id IN (SELECT value FROM json_each(?))",
                                         [json.dumps(ids)])}

    def add_batch(self, batch: Batch, received_at: str) -> tuple[int, int]:
        """Store a batch's reads (uploaded = received here); returns (new, already had)."""
        cols = [*READ_FIELDS, "uploaded_at"]
        with self.store.transaction(exclusive=False) as db:
            have = self._known(db, "reads", [r["id"] for r in batch.reads])
            db.conn.executemany(_insert("reads", cols),
                                [[r[k] for k in READ_FIELDS] + [received_at] for r in batch.reads])
        return len(batch.reads) - len(have), len(have)

    def add_alert(self, alert_id: str, device_id: str, payload: str, received_at: str) -> None:
        row = alert_row(alert_id, device_id, payload, received_at)
        with self.store.transaction(exclusive=False) as db:
            db.execute(_insert("alerts", _ALERT_COLUMNS), [row[c] for c in _ALERT_COLUMNS])

    def _add_records(self, db: Any, table: str, batch: RecordBatch, received_at: str) -> tuple[int, int]:
        """A batch of dispositions or BOLOs into ``table``, once each; (new, already had)."""
        fields = RECORD_KINDS[batch.kind][1]
        have = self._known(db, table, [r["id"] for r in batch.records])
        db.conn.executemany(_insert(table, [*fields, "uploaded_at"]),
                            [[r[k] for k in fields] + [received_at] for r in batch.records])
        return len(batch.records) - len(have), len(have)

    def add_dispositions(self, batch: RecordBatch, received_at: str) -> tuple[int, int]:
        """Each disposition once, in the alert's history; the newest becomes the alert's current one."""
        with self.store.transaction(exclusive=False) as db:
            counts = self._add_records(db, "alert_dispositions", batch, received_at)
            for alert_id in {r["alert_id"] for r in batch.records}:
                db.execute(
                    "UPDATE alerts SET disposition = d.disposition, disposition_by = d.\"user\", "
                    "disposition_at = d.ts, disposition_note = d.note FROM (SELECT * FROM alert_dispositions "
                    "WHERE alert_id = ? ORDER BY ts DESC, id DESC LIMIT 1) AS d WHERE alerts.id = d.alert_id",
                    [alert_id])
        return counts

    def add_bolos(self, batch: RecordBatch, received_at: str) -> tuple[int, int]:
        """Officers' BOLOs, once each (``alprd hotlist share-bolo --received`` puts them on the fleet's list)."""
        with self.store.transaction(exclusive=False) as db:
            return self._add_records(db, "bolo_uploads", batch, received_at)

    def set_device(self, device_id: str, kind: str, payload: str, received_at: str) -> None:
        """Latest status (and its state) or heartbeat of a unit."""
        body = json.loads(payload)
        state = body.get("state") if kind == "status" and isinstance(body, dict) else None
        with self.store.transaction(exclusive=False) as db:
            db.execute("INSERT INTO devices (device_id) VALUES (?) ON CONFLICT(device_id) DO NOTHING", [device_id])
            db.execute(f"UPDATE devices SET {kind} = ?, updated_at = ? WHERE device_id = ?",
                       [payload, received_at, device_id])
            if state:
                db.execute("UPDATE devices SET state = ? WHERE device_id = ?", [str(state)[:64], device_id])

    def refuse(self, topic: str, error: str, payload: bytes, received_at: str) -> None:
        with self.store.transaction(exclusive=False) as db:
            db.execute("INSERT INTO refused (received_at, topic, error, size, payload) VALUES (?, ?, ?, ?, ?)",
                       [received_at, topic[:200], error[:500], len(payload), payload[:REFUSED_KEEP]])
