"""The uploader service: alerts first, then reads in batches, each marked only when acknowledged.

It runs as a daemon service (``run(stop)``) or alone (``alprd upload``). paho
owns the network thread; its acknowledgements are handed to the event loop
with ``call_soon_threadsafe``, and only there is SQLite updated, so the
in-flight bookkeeping has one owner. Nothing is removed from the vehicle by
uploading: the read is marked, and the purge decides later (it never removes a
read that is not marked).

Order on the wire: every tick publishes waiting alerts before the next read
batch, and alerts are not held back by the batch window, so a hit goes out
ahead of any backlog. Up to ``max_inflight_batches`` batches await their
acknowledgement at once; after a crash the unmarked ones are simply sent
again, and the receiver ignores read UUIDs it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
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
from alprd.uplink.outbox import Outbox
from alprd.uplink.pacing import DAY_S, Severity, backlog_severity, batch_wait
from alprd.uplink.wire import encode_batch, status_payload, topic

POLL_S = 5.0  # longest sleep between looks at the database
SETTLE_S = 3.0  # on shutdown, how long to wait for batches already sent to be acknowledged
ALERT_CHUNK = 100


def _properties(content_type: str, **user: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    if user:
        props.UserProperty = list(user.items())
    return props


@dataclass
class _Sent:
    kind: Literal["reads", "alerts"]
    ids: list[str]


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
                       for k in ("reads", "alerts", "status", "heartbeat")}
        self._inflight: dict[int, _Sent] = {}
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
        self.last_upload_at: str | None = None
        self.log = get_logger("alprd.uplink").bind(device=self.device_id)
        self.link = Link(
            self.cfg, f"alprd-{self.device_id}",
            status_topic=self.topics["status"],
            birth=lambda: status_payload(self.device_id, "online", ts=utc_now()),
            will=status_payload(self.device_id, "offline", "connection lost"),
            on_change=self._wake_threadsafe,
        )
        self.link.client.on_publish = self._published

    # -- wake-ups (in the event loop's thread) -----------------------------------
    def on_read(self, read: Read) -> None:
        """A read was committed: look whether a batch is due."""
        self._wake.set()

    def notify_alert(self, alert: dict[str, Any] | None = None) -> None:
        """An alert row was committed (an Alerter listener): it goes out now, ahead of the reads."""
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
            "inflight_batches": self._inflight_count("reads"),
            "reads_uploaded": self.reads_uploaded,
            "batches_acked": self.batches_acked,
            "alerts_published": self.alerts_published,
            "refused_by_broker": self.refused,
            "bytes_sent": self.bytes_sent,
            "last_upload_at": self.last_upload_at,
        }

    def drained(self) -> bool:
        """Nothing waiting and nothing on its way (``alprd upload --drain`` stops here)."""
        return not self._inflight and self.outbox.backlog()[0] == 0 and self.outbox.alerts_waiting() == 0

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

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        sent = self._inflight.pop(mid, None)
        if sent is None:  # status or heartbeat
            return
        self._wake.set()
        if reason.is_failure:
            self.refused += 1
            self._hold_until = self._clock() + self.cfg.reconnect_max_s
            self.log.error("uplink_refused", kind=sent.kind, items=len(sent.ids), reason=str(reason),
                           fix=f"allow this client to publish to {self.topics[sent.kind]} in the broker ACL",
                           retry_in_s=self.cfg.reconnect_max_s)
            return
        if sent.kind == "reads":
            self.outbox.mark_reads(sent.ids)
            self.reads_uploaded += len(sent.ids)
            self.batches_acked += 1
            self.last_upload_at = utc_now()
        else:
            for alert_id in sent.ids:
                self.outbox.mark_alert(alert_id)
            self.alerts_published += len(sent.ids)

    # -- one look at the database -------------------------------------------------
    def _send_alerts(self) -> None:
        for row in self.outbox.next_alerts(ALERT_CHUNK, self._inflight_ids("alerts")):
            mid = self.link.publish(self.topics["alerts"], row["payload"].encode(), qos=1,
                                    properties=_properties("application/json", alert_id=row["id"]))
            if mid is None:
                return
            self._inflight[mid] = _Sent("alerts", [row["id"]])

    def _send_reads(self, now: float) -> float:
        """Publish due batches while the window has room; returns seconds until the next is due."""
        while self._inflight_count("reads") < self.cfg.max_inflight_batches:
            head = self.outbox.next_reads(self.cfg.batch_size, self._inflight_ids("reads"))
            oldest_age = now - parse_iso(head[0]["ts"]).timestamp() if head else None
            wait = batch_wait(len(head), oldest_age, self.cfg.batch_size, self.cfg.batch_max_age_s)
            if wait > 0:
                return wait
            ids = [r["id"] for r in head]
            payload = encode_batch(self.device_id, self.outbox.reads(ids))
            mid = self.link.publish(self.topics["reads"], payload, qos=1,
                                    properties=_properties("application/json", content_encoding="gzip"))
            if mid is None:
                return math.inf
            self._inflight[mid] = _Sent("reads", ids)
            self.bytes_sent += len(payload)
        return math.inf  # window full: an acknowledgement wakes us

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

    def _heartbeat(self, now: float, force: bool) -> float:
        if not self.link.connected:
            return math.inf
        if self.link.connects != self._seen_connects:
            self._seen_connects = self.link.connects
            force = True
        if force or now >= self._next_heartbeat:
            body = {"device_id": self.device_id, "ts": utc_now(), **self._status_fn(),
                    "audit_head": AccessLog(self.outbox.store).head()}  # the department's copy: cuts show
            self.link.publish(self.topics["heartbeat"], json.dumps(body, default=str).encode(), qos=0, retain=True)
            self._next_heartbeat = now + self.cfg.heartbeat_s
        return self._next_heartbeat - now

    def _tick(self) -> float:
        now = self._clock()
        changed = self._check_transfer_window(now)
        waits = [POLL_S, self._heartbeat(now, changed)]
        if self.link.connected and now >= self._hold_until:
            self._send_alerts()
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
        """Give sent batches a moment to be acknowledged, say goodbye, disconnect."""
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
        self.log.info("uplink_stopped", reads_uploaded=self.reads_uploaded, unacknowledged=len(self._inflight))
