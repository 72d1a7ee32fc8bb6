"""The uploader service: alerts first, then reads in batches, each marked only on the receiver's receipt.

It runs as a daemon service (``run(stop)``) or alone (``alprd upload``). paho
owns the network thread; acknowledgements and receipts are handed to the event
loop with ``call_soon_threadsafe``, and only there is SQLite updated, so the
in-flight bookkeeping has one owner. Nothing is removed from the vehicle by
uploading: the read is marked, and the purge decides later (it never removes a
read that is not marked).

"Uploaded" means the department committed it: the receiver publishes a receipt
on ``<prefix>/<device>/receipt`` after its database commit, and only then are
the batch's reads marked. The broker's PUBACK only says the broker took the
message; it may still drop it (no subscriber, a full queue, a crash before it
saved its queue). So a batch without a receipt is sent again after
``receipt_timeout_s`` (growing, jittered: ``pacing.resend_delay``), and at
once after a reconnect; the receiver stores read UUIDs once, and a copy of a
batch it already has gets a receipt again. A PUBACK with a failure reason
(an ACL refusal) puts the batch back and holds the uplink for a while.

Order on the wire: every tick publishes waiting alerts, then the officers'
dispositions and BOLOs (small JSON batches, one of each kind on its way at a
time, marked on their own receipts), before the next read batch; alerts are
not held back by the batch window, so a hit goes out ahead of any backlog.
Up to ``max_inflight_batches`` read batches await their receipt at once; after
a crash the unmarked ones are simply sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from alprd.audit.accesslog import AccessLog
from alprd.config import Config
from alprd.log import get_logger
from alprd.records import Read, parse_iso, utc_now
from alprd.store import Store
from alprd.uplink.link import Link
from alprd.uplink.outbox import RECORD_TABLES, Outbox
from alprd.uplink.pacing import DAY_S, Severity, backlog_severity, batch_wait, resend_delay
from alprd.uplink.wire import (
    Receipt,
    WireError,
    decode_receipt,
    encode_batch,
    encode_records,
    status_payload,
    topic,
)

POLL_S = 5.0  # longest sleep between looks at the database
SETTLE_S = 3.0  # on shutdown, how long to wait for receipts of batches already sent
ALERT_CHUNK = 100
RECORD_CHUNK = 100  # dispositions or BOLOs per batch (one batch of each kind on its way at a time)
NO_MATCHING_SUBSCRIBERS = 0x10  # PUBACK reason: accepted, and dropped, as nobody subscribes


def _properties(content_type: str, **user: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    if user:
        props.UserProperty = list(user.items())
    return props


@dataclass
class _Sent:
    """A batch (or one alert) sent and awaiting its receipt; re-sent as it is, same batch id."""

    kind: Literal["reads", "alerts", "dispositions", "bolos"]
    ids: list[str]
    payload: bytes
    properties: Properties
    due: float  # when to send it again if no receipt came
    attempts: int = 0


class Uploader:
    """Moves reads and alerts from SQLite to the broker; see the module docstring."""

    def __init__(self, config: Config, store: Store, clock: Callable[[], float] = time.time,
                 heartbeat_status: Callable[[], dict[str, Any]] | None = None):
        """``heartbeat_status`` gives the heartbeat's body (the daemon's whole status); alone, the uplink's."""
        self.cfg = config.uplink
        self.device_id = config.device.id
        self.outbox = Outbox(store)
        self._clock = clock
        self._status_fn = heartbeat_status or (lambda: {"uplink": self.status()})
        self.topics = {k: topic(self.cfg.topic_prefix, self.device_id, k)
                       for k in ("reads", "alerts", *RECORD_TABLES, "status", "heartbeat", "receipt")}
        self._inflight: dict[str, _Sent] = {}  # by batch id (an alert's: its id)
        self._mids: dict[int, str] = {}  # MQTT message id -> batch id, until the PUBACK
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hold_until = 0.0
        self._next_heartbeat = 0.0
        self._seen_connects = 0
        self.severity: Severity | None = None
        self.reads_uploaded = 0
        self.batches_acked = 0
        self.alerts_published = 0
        self.bytes_sent = 0
        self.refused = 0
        self.unheard = 0  # PUBACKs that said nobody subscribes
        self.resent = 0
        self.last_upload_at: str | None = None
        self.log = get_logger("alprd.uplink").bind(device=self.device_id)
        self.link = Link(
            self.cfg, f"alprd-{self.device_id}",
            status_topic=self.topics["status"],
            birth=lambda: status_payload(self.device_id, "online", ts=utc_now()),
            will=status_payload(self.device_id, "offline", "connection lost"),
            subscriptions=[self.topics["receipt"]],
            on_change=self._wake_threadsafe,
        )
        self.link.client.on_publish = self._published
        self.link.client.on_message = self._message

    # -- wake-ups (in the event loop's thread) -----------------------------------
    def on_read(self, read: Read) -> None:
        """A read was committed: look whether a batch is due."""
        self._wake.set()

    def notify_alert(self, alert: dict[str, Any] | None = None) -> None:
        """An alert row was committed (an Alerter listener): it goes out now, ahead of the reads."""
        self._wake.set()

    def notify_records(self) -> None:
        """An officer's disposition or BOLO was committed (the screen): it goes out now."""
        self._wake.set()

    # -- state --------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        backlog, oldest = self.outbox.backlog()
        age = self._age_s(oldest)
        return {
            "connected": self.link.connected,
            "error": self.link.error,
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "backlog": backlog,
            "oldest_unuploaded": oldest,
            "oldest_age_days": round(age / DAY_S, 3) if age is not None else None,
            "transfer": backlog_severity(age, self.cfg.backlog_warn_days, self.cfg.backlog_critical_days),
            "warn_days": self.cfg.backlog_warn_days,
            "critical_days": self.cfg.backlog_critical_days,
            "alerts_waiting": self.outbox.alerts_waiting(),
            "officer_records_waiting": self.outbox.records_waiting(),
            "inflight_batches": self._inflight_count("reads"),
            "reads_uploaded": self.reads_uploaded,
            "batches_acked": self.batches_acked,
            "alerts_published": self.alerts_published,
            "refused_by_broker": self.refused,
            "no_receiver": self.unheard,
            "resent": self.resent,
            "bytes_sent": self.bytes_sent,
            "last_upload_at": self.last_upload_at,
        }

    def drained(self) -> bool:
        """Nothing waiting and nothing on its way (``alprd upload --drain`` stops here)."""
        return (not self._inflight and self.outbox.backlog()[0] == 0 and self.outbox.alerts_waiting() == 0
                and self.outbox.records_waiting() == 0)

    def _age_s(self, ts: str | None) -> float | None:
        return self._clock() - parse_iso(ts).timestamp() if ts else None

    def _inflight_count(self, kind: str) -> int:
        # list(): status() may be called from another thread (the status file writer)
        return sum(1 for s in list(self._inflight.values()) if s.kind == kind)

    def _inflight_ids(self, kind: str) -> list[str]:
        return [i for s in self._inflight.values() if s.kind == kind for i in s.ids]

    # -- network thread -> event loop ---------------------------------------------
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while paho was still talking
                loop.call_soon_threadsafe(fn, *args)

    def _wake_threadsafe(self) -> None:
        self._post(self._wake.set)

    def _published(self, client, userdata, mid: int, reason: ReasonCode, properties) -> None:
        self._post(self._acked, mid, reason)

    def _message(self, client, userdata, msg) -> None:
        self._post(self._receipt, msg.payload)

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        """The broker's answer: a failure puts the batch back; success still waits for the receipt."""
        batch_id = self._mids.pop(mid, "")
        sent = self._inflight.get(batch_id)
        if sent is None:  # status, heartbeat, or a batch whose receipt came first
            return
        if reason.value == NO_MATCHING_SUBSCRIBERS:
            self.unheard += 1
            self.log.warning("uplink_no_receiver", kind=sent.kind, items=len(sent.ids),
                             fix="start the department receiver (alprd ingest); the batch is sent again")
        elif reason.is_failure:
            del self._inflight[batch_id]
            self._wake.set()
            self.refused += 1
            self._hold_until = self._clock() + self.cfg.reconnect_max_s
            self.log.error("uplink_refused", kind=sent.kind, items=len(sent.ids), reason=str(reason),
                           fix=f"allow this client to publish to {self.topics[sent.kind]} in the broker ACL",
                           retry_in_s=self.cfg.reconnect_max_s)

    def _receipt(self, payload: bytes) -> None:
        """The receiver committed a batch: only now are its reads (or the alert) marked."""
        try:
            receipt: Receipt = decode_receipt(payload)
        except WireError as err:
            self.log.warning("receipt_refused", error=str(err))
            return
        sent = self._inflight.get(receipt.batch_id)
        if sent is None or sent.kind != receipt.kind:  # a second receipt, or one for a batch of an earlier run
            return
        del self._inflight[receipt.batch_id]
        self._wake.set()
        if receipt.refused:
            self.log.warning("receiver_refused_reads", batch_id=receipt.batch_id, refused=receipt.refused,
                             fix="the receiver keeps them in its 'refused' table with the reason")
        if sent.kind == "reads":
            self.outbox.mark_reads(sent.ids)
            self.reads_uploaded += len(sent.ids)
            self.batches_acked += 1
            self.last_upload_at = utc_now()
        elif sent.kind == "alerts":
            self.outbox.mark_alert(sent.ids[0])
            self.alerts_published += 1
        else:
            self.outbox.mark_records(sent.kind, sent.ids)

    # -- one look at the database -------------------------------------------------
    def _publish(self, batch_id: str, sent: _Sent) -> bool:
        """(Re)send one batch; False when not connected (it waits for the next look)."""
        mid = self.link.publish(self.topics[sent.kind], sent.payload, qos=1, properties=sent.properties)
        if mid is None:
            return False
        self._mids[mid] = batch_id
        self._inflight[batch_id] = sent
        sent.due = self._clock() + resend_delay(sent.attempts, self.cfg.receipt_timeout_s)
        sent.attempts += 1
        self.bytes_sent += len(sent.payload)
        return True

    def _send_alerts(self) -> None:
        for row in self.outbox.next_alerts(ALERT_CHUNK, self._inflight_ids("alerts")):
            sent = _Sent("alerts", [row["id"]], row["payload"].encode(),
                         _properties("application/json", alert_id=row["id"]), 0.0)
            if not self._publish(row["id"], sent):
                return

    def _send_records(self) -> None:
        """Officers' dispositions and BOLOs, a batch of each kind at a time (after the alerts they follow)."""
        for kind in RECORD_TABLES:
            if self._inflight_count(kind):
                continue
            rows = self.outbox.next_records(kind, RECORD_CHUNK)
            if not rows:
                continue
            batch_id = str(uuid.uuid4())
            sent = _Sent(kind, [r["id"] for r in rows], encode_records(kind, self.device_id, rows, batch_id),
                         _properties("application/json"), 0.0)
            if not self._publish(batch_id, sent):
                return

    def _send_reads(self, now: float) -> float:
        """Publish due batches while the window has room; returns seconds until the next is due."""
        while self._inflight_count("reads") < self.cfg.max_inflight_batches:
            head = self.outbox.next_reads(self.cfg.batch_size, self._inflight_ids("reads"))
            oldest_age = now - parse_iso(head[0]["ts"]).timestamp() if head else None
            wait = batch_wait(len(head), oldest_age, self.cfg.batch_size, self.cfg.batch_max_age_s)
            if wait > 0:
                return wait
            ids = [r["id"] for r in head]
            batch_id = str(uuid.uuid4())
            sent = _Sent("reads", ids, encode_batch(self.device_id, self.outbox.reads(ids), batch_id),
                         _properties("application/json", content_encoding="gzip"), 0.0)
            if not self._publish(batch_id, sent):
                return math.inf
        return math.inf  # window full: a receipt wakes us

    def _resend(self, now: float, reconnected: bool) -> float:
        """Send again what has no receipt after its timeout, or all of it after a reconnect
        (receipts published while we were away are lost); returns seconds until the next is due."""
        if reconnected:
            self._mids.clear()  # PUBACKs of the old connection will not come
        for batch_id, sent in list(self._inflight.items()):
            if (reconnected or sent.due <= now) and self._publish(batch_id, sent):
                self.resent += 1
        return min((s.due - now for s in self._inflight.values()), default=math.inf)

    def _check_transfer_window(self, now: float) -> bool:
        """Log a change of backlog severity; True when it changed (the heartbeat then goes at once)."""
        oldest = self.outbox.oldest_pending()
        age = self._age_s(oldest)
        severity = backlog_severity(age, self.cfg.backlog_warn_days, self.cfg.backlog_critical_days)
        if severity == self.severity:
            return False
        fields = {"oldest_unuploaded": oldest, "age_days": round(age / DAY_S, 2) if age else None,
                  "critical_days": self.cfg.backlog_critical_days}
        if severity == "critical":
            self.log.error("transfer_window_exceeded", **fields,
                           fix="connect this unit to the department network; reads are kept until uploaded")
        elif severity == "warning":
            self.log.warning("transfer_window_closing", **fields)
        elif self.severity is not None:
            self.log.info("transfer_window_ok")
        self.severity = severity
        return True

    def _reconnected(self) -> bool:
        """True once after each new connection."""
        if self.link.connects == self._seen_connects:
            return False
        self._seen_connects = self.link.connects
        return True

    def _heartbeat(self, now: float, force: bool) -> float:
        if not self.link.connected:
            return math.inf
        if force or now >= self._next_heartbeat:
            body = {"device_id": self.device_id, "ts": utc_now(), **self._status_fn(),
                    "audit_head": AccessLog(self.outbox.store).head()}  # the department's copy: cuts show
            self.link.publish(self.topics["heartbeat"], json.dumps(body, default=str).encode(), qos=0, retain=True)
            self._next_heartbeat = now + self.cfg.heartbeat_s
        return self._next_heartbeat - now

    def _tick(self) -> float:
        now = self._clock()
        changed = self._check_transfer_window(now)
        reconnected = self.link.connected and self._reconnected()
        waits = [POLL_S, self._heartbeat(now, changed or reconnected)]
        if self.link.connected and now >= self._hold_until:
            waits.append(self._resend(now, reconnected))
            self._send_alerts()
            self._send_records()
            waits.append(self._send_reads(now))
        elif self._hold_until > now:
            waits.append(self._hold_until - now)
        return max(0.0, min(waits))

    # -- the service --------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        relay = asyncio.create_task(self._relay(stop))
        self.link.start()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    wait = self._tick()
                except Exception as err:  # noqa: BLE001 - database busy, bad row: log, keep the daemon, retry
                    self.log.error("uplink_tick_failed", error=str(err))
                    wait = POLL_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
        finally:
            relay.cancel()
            await self._shutdown()

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _shutdown(self) -> None:
        """Give sent batches a moment to be receipted, say goodbye, disconnect."""
        deadline = time.monotonic() + SETTLE_S
        while self._inflight and self.link.connected and time.monotonic() < deadline:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.1)
        if self.link.connected:
            info = self.link.client.publish(
                self.topics["status"], status_payload(self.device_id, "offline", "shutdown", utc_now()),
                qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                await asyncio.to_thread(info.wait_for_publish, 2.0)
        await asyncio.to_thread(self.link.stop)
        self._loop = None
        self.log.info("uplink_stopped", reads_uploaded=self.reads_uploaded, without_receipt=len(self._inflight))
