"""``alprd ingest``: the department-side reference receiver.

It subscribes to every device's reads, alerts, status and heartbeat with a
persistent session (the broker queues QoS 1 messages while it is away) and
writes them into its own SQLite database. After each commit it publishes a
receipt for the batch (or alert) to ``<prefix>/<device>/receipt``: that, not
the broker's PUBACK, is what marks the reads uploaded on the unit. The MQTT
acknowledgement is manual and comes only after the commit and the receipt, so
a receiver killed mid-write gets the message again; read UUIDs and alert ids
are primary keys, so a message received twice is stored once (``copies``
counts the deliveries) and gets its receipt again. A message that cannot be
parsed is kept in ``refused`` with the reason and acknowledged, so one bad
sender cannot block the queue.

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
from pathlib import Path
from typing import Any

import sqlite_utils

from alprd.config import UplinkConfig
from alprd.log import get_logger
from alprd.records import READ_COLUMNS, READ_FIELDS, utc_now
from alprd.uplink.link import Link
from alprd.uplink.wire import Batch, Receipt, WireError, decode_batch, device_of, encode_receipt, subscription, topic

SESSION_EXPIRY_S = 7 * 86_400  # how long the broker keeps queuing for a receiver that is away


class IngestDB:
    """The receiver's own SQLite database; every write is idempotent."""

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
            self.db["devices"].create(
                {"device_id": str, "state": str, "status": str, "heartbeat": str, "updated_at": str},
                pk="device_id", if_not_exists=True)
            self.db["refused"].create(
                {"id": int, "received_at": str, "topic": str, "error": str, "size": int},
                pk="id", if_not_exists=True)

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

    def refuse(self, topic: str, error: str, size: int, received_at: str) -> None:
        with self._lock, self.conn:
            self.conn.execute("insert into refused (received_at, topic, error, size) values (?, ?, ?, ?)",
                              [received_at, topic, error[:500], size])

    def count(self, table: str) -> int:
        with self._lock:
            return self.conn.execute(f"select count(*) from [{table}]").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _alert_id(properties: Any, payload: bytes) -> str:
    """The sender's alert id (MQTT user property), else a digest of the payload."""
    for key, value in getattr(properties, "UserProperty", None) or []:
        if key == "alert_id":
            return value
    return "sha256:" + hashlib.sha256(payload).hexdigest()


class Ingest:
    """Subscribes and stores; ``start()``/``stop()`` from any thread."""

    def __init__(self, cfg: UplinkConfig, db: IngestDB, client_id: str, shared_group: str | None = None):
        self.cfg = cfg
        self.db = db
        self.stats = {"reads_new": 0, "reads_duplicate": 0, "batches": 0, "alerts": 0, "refused": 0}
        self.log = get_logger("alprd.ingest").bind(client_id=client_id)
        subs = [subscription(cfg.topic_prefix, kind, shared_group) for kind in ("reads", "alerts")]
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
        now = utc_now()
        try:
            receipt = self._store(msg, now)
        except WireError as err:
            self.stats["refused"] += 1
            self.log.warning("message_refused", topic=msg.topic, error=str(err))
            self.db.refuse(msg.topic, str(err), len(msg.payload), now)
        except sqlite3.Error as err:
            # Not acknowledged: the broker delivers it again when we reconnect.
            self.log.error("ingest_write_failed", topic=msg.topic, error=str(err))
            return
        else:
            if receipt is not None:
                device = device_of(self.cfg.topic_prefix, msg.topic)
                self.link.publish(topic(self.cfg.topic_prefix, device, "receipt"), encode_receipt(receipt), qos=1)
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)

    def _store(self, msg, now: str) -> Receipt | None:
        """Store one message; the receipt to send for it, if it is a batch or an alert."""
        kind = msg.topic.rsplit("/", 1)[-1]
        device = device_of(self.cfg.topic_prefix, msg.topic)
        if kind == "reads":
            batch = decode_batch(msg.payload)
            new, dup = self.db.add_batch(batch, now)
            self.stats["batches"] += 1
            self.stats["reads_new"] += new
            self.stats["reads_duplicate"] += dup
            for reason in batch.refused:
                self.stats["refused"] += 1
                self.db.refuse(msg.topic, reason, 0, now)
            return Receipt("reads", batch.batch_id, len(batch.reads), len(batch.refused), now)
        try:
            text = msg.payload.decode("utf-8")
            json.loads(text)
        except ValueError as err:
            raise WireError(f"{kind} message is not UTF-8 JSON ({err})") from None
        if kind == "alerts":
            alert_id = _alert_id(msg.properties, msg.payload)
            self.db.add_alert(alert_id, device, text, now)
            self.stats["alerts"] += 1
            return Receipt("alerts", alert_id, 1, 0, now)
        if kind in ("status", "heartbeat"):
            self.db.set_device(device, kind, text, now)
            return None
        raise WireError(f"unexpected topic {msg.topic!r}")
