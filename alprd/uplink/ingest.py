"""``alprd ingest``: the department-side reference receiver.

It subscribes to every device's reads, alerts, officers' dispositions and BOLOs, status and heartbeat with a
persistent session (the broker queues QoS 1 messages while it is away) and
writes them into its own SQLite database. After each commit it publishes a
receipt for the batch (or alert) to ``<prefix>/<device>/receipt``: that, not
the broker's PUBACK, is what marks the reads uploaded on the unit. The MQTT
acknowledgement is manual and comes only after the commit and the receipt, so
a receiver killed mid-write gets the message again; read UUIDs and alert ids
are primary keys, so a message received twice is stored once (``copies``
counts the deliveries) and gets its receipt again.

Every message is checked against the wire schema first (:mod:`alprd.uplink.schema`:
sizes, types, ranges, timestamps, topic device = body device). Anything that
fails, or that the database will not take, is kept in ``refused`` (reason and
the first bytes) and acknowledged: the broker delivers only a few messages at
a time to a receiver, so a message left unacknowledged would stop the flow for
good. Only a database that cannot be written at all (locked, full) leaves it
unacknowledged, for delivery again on reconnect.

Scale-out: run several with the same ``--shared GROUP``; the broker (Mosquitto
2, EMQX, HiveMQ: MQTT 5 shared subscriptions) spreads messages over them. They
may share this SQLite file at moderate rates; a department at fleet scale
points the same logic at its own database instead.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from alprd.config import UplinkConfig
from alprd.log import get_logger
from alprd.records import READ_COLUMNS, READ_FIELDS, iso
from alprd.uplink.link import Link
from alprd.uplink.schema import Batch, RecordBatch, check_batch, check_device, check_message, check_records
from alprd.uplink.wire import RECORD_KINDS, Receipt, WireError, device_of, encode_receipt, subscription, topic

SESSION_EXPIRY_S = 7 * 86_400  # how long the broker keeps queuing for a receiver that is away
REFUSED_KEEP = 2048  # bytes of a refused message kept, to see what it was


class IngestStore(Protocol):
    """Where a receiver stores what it accepted, and what it refused; each write idempotent and committed
    on return (a receipt follows it). SQLite here; a department's server database implements the same."""

    write_errors: tuple[type[Exception], ...]  # the database cannot be written now: leave the message queued

    def add_batch(self, batch: Batch, received_at: str) -> tuple[int, int]: ...
    def add_alert(self, alert_id: str, device_id: str, payload: str, received_at: str) -> None: ...
    def add_dispositions(self, batch: RecordBatch, received_at: str) -> tuple[int, int]: ...
    def add_bolos(self, batch: RecordBatch, received_at: str) -> tuple[int, int]: ...
    def set_device(self, device_id: str, kind: str, payload: str, received_at: str) -> None: ...
    def refuse(self, topic: str, error: str, payload: bytes, received_at: str) -> None: ...


class IngestDB:
    """A receiver's own SQLite file, with no policy on it (to try a unit's uplink); every write is idempotent.
    The department keeps its data with ``alprd server`` (:mod:`alprd.server`)."""

    write_errors = (sqlite3.OperationalError,)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(self.conn)
        self.db.enable_wal()
        self._lock = threading.Lock()
        with self._lock, self.conn:
            self.db["reads"].create(
                {**READ_COLUMNS, "batch_id": str, "received_at": str, "copies": int},
                pk="id", not_null={"plate", "ts"}, if_not_exists=True)
            self.db["reads"].create_index(["device_id", "ts"], if_not_exists=True)
            self.db["alerts"].create(
                {"id": str, "device_id": str, "payload": str, "received_at": str, "copies": int},
                pk="id", if_not_exists=True)
            for kind, (_, fields) in RECORD_KINDS.items():  # officers' dispositions and BOLOs
                self.db[kind].create({**{f: int if f == "priority" else str for f in fields}, "device_id": str,
                                      "batch_id": str, "received_at": str, "copies": int},
                                     pk="id", if_not_exists=True)
            self.db["devices"].create(
                {"device_id": str, "state": str, "status": str, "heartbeat": str, "updated_at": str},
                pk="device_id", if_not_exists=True)
            self.db["refused"].create(
                {"id": int, "received_at": str, "topic": str, "error": str, "size": int, "payload": bytes},
                pk="id", if_not_exists=True)
            if "payload" not in self.db["refused"].columns_dict:  # a database from before it was kept
                self.db["refused"].add_column("payload", bytes)
            have = self.db["reads"].columns_dict
            for name, kind in READ_COLUMNS.items():  # a read field added since the database was made
                if name not in have:
                    self.db["reads"].add_column(name, kind)

    def add_batch(self, batch: Batch, received_at: str) -> tuple[int, int]:
        """Store a batch's reads; returns (new, already had)."""
        ids = [r["id"] for r in batch.reads]
        with self._lock, self.conn:
            have = {r[0] for r in self.conn.execute(
                "select id from reads where id in (select value from json_each(?))", [json.dumps(ids)])}
            cols = [*READ_FIELDS, "batch_id", "received_at", "copies"]
            self.conn.executemany(
                f"insert into reads ({', '.join(cols)}) values ({', '.join('?' * len(cols))}) "
                "on conflict(id) do update set copies = copies + 1",
                [[r[k] for k in READ_FIELDS] + [batch.batch_id, received_at, 1] for r in batch.reads])
        return len(ids) - len(have), len(have)

    def _add_records(self, batch: RecordBatch, received_at: str) -> tuple[int, int]:
        """Store a batch of dispositions or BOLOs once each; returns (new, already had)."""
        fields = RECORD_KINDS[batch.kind][1]
        ids = [r["id"] for r in batch.records]
        cols = [*fields, "device_id", "batch_id", "received_at", "copies"]
        with self._lock, self.conn:
            have = {r[0] for r in self.conn.execute(
                f"select id from {batch.kind} where id in (select value from json_each(?))", [json.dumps(ids)])}
            self.conn.executemany(
                f"insert into {batch.kind} ({', '.join(cols)}) values ({', '.join('?' * len(cols))}) "
                "on conflict(id) do update set copies = copies + 1",
                [[r[k] for k in fields] + [batch.device_id, batch.batch_id, received_at, 1] for r in batch.records])
        return len(ids) - len(have), len(have)

    add_dispositions = _add_records
    add_bolos = _add_records

    def add_alert(self, alert_id: str, device_id: str, payload: str, received_at: str) -> None:
        with self._lock, self.conn:
            self.conn.execute(
                "insert into alerts (id, device_id, payload, received_at, copies) values (?, ?, ?, ?, 1) "
                "on conflict(id) do update set copies = copies + 1",
                [alert_id, device_id, payload, received_at])

    def set_device(self, device_id: str, kind: str, payload: str, received_at: str) -> None:
        """Latest status (and its state) or heartbeat of a device."""
        body = json.loads(payload)
        state = body.get("state") if kind == "status" and isinstance(body, dict) else None
        with self._lock, self.conn:
            self.conn.execute("insert or ignore into devices (device_id) values (?)", [device_id])
            self.conn.execute(f"update devices set {kind} = ?, updated_at = ? where device_id = ?",
                              [payload, received_at, device_id])
            if state:
                self.conn.execute("update devices set state = ? where device_id = ?", [state, device_id])

    def refuse(self, topic: str, error: str, payload: bytes, received_at: str) -> None:
        with self._lock, self.conn:
            self.conn.execute("insert into refused (received_at, topic, error, size, payload) values (?, ?, ?, ?, ?)",
                              [received_at, topic[:200], error[:500], len(payload), payload[:REFUSED_KEEP]])

    def count(self, table: str) -> int:
        with self._lock:
            return self.conn.execute(f"select count(*) from [{table}]").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _alert_id(properties: Any, payload: bytes) -> str:
    """The sender's alert id (MQTT user property), else a digest of the payload."""
    for key, value in getattr(properties, "UserProperty", None) or []:
        if key == "alert_id" and 0 < len(value) <= 64 and value.isprintable():
            return value
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def _snippet(item: Any) -> bytes:
    """A refused read as JSON bytes, for the ``refused`` table."""
    try:
        return json.dumps(item)[:REFUSED_KEEP].encode()
    except (RecursionError, ValueError):
        return b""


class Ingest:
    """Subscribes and stores; ``start()``/``stop()`` from any thread."""

    def __init__(self, cfg: UplinkConfig, db: IngestStore, client_id: str, shared_group: str | None = None):
        self.cfg = cfg
        self.db = db
        self.stats = {"reads_new": 0, "reads_duplicate": 0, "batches": 0, "alerts": 0, "dispositions": 0,
                      "bolos": 0, "refused": 0}
        self.log = get_logger("alprd.ingest").bind(client_id=client_id)
        subs = [subscription(cfg.topic_prefix, kind, shared_group) for kind in ("reads", "alerts", *RECORD_KINDS)]
        subs += [subscription(cfg.topic_prefix, kind) for kind in ("status", "heartbeat")]
        self.link = Link(cfg, client_id, clean_start=False, session_expiry_s=SESSION_EXPIRY_S,
                         subscriptions=subs)
        self.link.client.manual_ack_set(True)
        self.link.client.on_message = self._message

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def _message(self, client, userdata, msg) -> None:
        now = datetime.now(UTC)
        try:
            receipt = self._store(msg, now)
        except self.db.write_errors as err:
            # The database cannot be written (locked, full): not acknowledged, delivered again on reconnect.
            self.log.error("ingest_write_failed", topic=msg.topic, error=str(err))
            return
        except Exception as err:  # noqa: BLE001 - whatever a message does, it must not block the queue
            error = str(err) if isinstance(err, WireError) else f"cannot store it: {type(err).__name__}: {err}"
            self.stats["refused"] += 1
            self.log.warning("message_refused", topic=msg.topic, error=error[:500])
            self.db.refuse(msg.topic, error, msg.payload, iso(now))
        else:
            if receipt is not None:
                device = device_of(self.cfg.topic_prefix, msg.topic)
                self.link.publish(topic(self.cfg.topic_prefix, device, "receipt"), encode_receipt(receipt), qos=1)
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)

    def _store(self, msg, now: datetime) -> Receipt | None:
        """Check and store one message; the receipt to send for it, if it is a batch or an alert."""
        kind = msg.topic.rsplit("/", 1)[-1]
        device = check_device(device_of(self.cfg.topic_prefix, msg.topic))
        received_at = iso(now)
        if kind == "reads":
            batch = check_batch(msg.payload, device, now)
            new, dup = self.db.add_batch(batch, received_at)
            self.stats["batches"] += 1
            self.stats["reads_new"] += new
            self.stats["reads_duplicate"] += dup
            for reason, item in batch.refused:
                self.stats["refused"] += 1
                self.db.refuse(msg.topic, reason, _snippet(item), received_at)
            return Receipt("reads", batch.batch_id, len(batch.reads), len(batch.refused), received_at)
        if kind in RECORD_KINDS:
            records = check_records(kind, msg.payload, device, now)
            add = self.db.add_dispositions if kind == "dispositions" else self.db.add_bolos
            new, _ = add(records, received_at)
            self.stats[kind] += new
            for reason, item in records.refused:
                self.stats["refused"] += 1
                self.db.refuse(msg.topic, reason, _snippet(item), received_at)
            return Receipt(kind, records.batch_id, len(records.records), len(records.refused), received_at)
        if kind not in ("alerts", "status", "heartbeat"):
            raise WireError(f"unexpected topic {msg.topic!r}")
        text = check_message(kind, msg.payload, device)
        if kind == "alerts":
            alert_id = _alert_id(msg.properties, msg.payload)
            self.db.add_alert(alert_id, device, text, received_at)
            self.stats["alerts"] += 1
            return Receipt("alerts", alert_id, 1, 0, received_at)
        self.db.set_device(device, kind, text, received_at)
        return None
