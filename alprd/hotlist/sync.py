"""Hotlist sync from the department over MQTT, signed with a shared key.

Wire format (one MQTT message, QoS 1)::

    payload = hex(HMAC-SHA256(sync_key, body)) + "\\n" + body

``body`` is our JSON Lines hotlist format (what ``alprd hotlist import`` reads):
a header line ``{"format": "alprd-hotlist/1", "type": "snapshot", "version": N,
"list_id": ID, "issued_at": ISO}`` then one entry object a line, for a whole list
(published retained on ``<topic_prefix>/hotlist/snapshot``); or a header
``{"format": ..., "type": "delta", "version": N, "base_version": M, "list_id": ID,
"remove": [pattern, ...]}`` then the entries to add, on ``<topic_prefix>/hotlist/delta``.
Lines are parsed one at a time, so a million-entry list never exists as a million
dicts at once. The department side (what publishes) is :mod:`alprd.hotlist.department`.

A list is applied only if the signature verifies, its version is newer than
the list in use, and (a delta) it continues from exactly that list: the same
list id and version; anything else is refused and logged, and the list in use stays. Versions only go
forward: an old signed list re-published (retained, or replayed) is refused by
a unit that has a newer one; a fresh unit (version 0), with nothing to compare,
refuses a snapshot whose signed ``issued_at`` is older than ``stale_after_h``.
Bad rows inside a verified list are skipped and logged like an import's.

Messages that fail the signature or are not newer (junk, replays, the retained
snapshot re-delivered on every reconnect) are dropped as they arrive, before the
queue, so they cannot crowd out real lists: counted as ``ignored``, logged at
most once a minute, and no access-log record each.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from alprd.audit import AccessLog
from alprd.config import Config, HotlistConfig, UplinkConfig, clip
from alprd.hotlist import repository
from alprd.hotlist.entries import (
    Entry,
    EntryError,
    RowError,
    iter_entries,
    json_lines,
    normalize_pattern,
)
from alprd.log import get_logger
from alprd.records import parse_iso, utc_now
from alprd.store import Store
from alprd.uplink.link import Link

FORMAT = "alprd-hotlist/1"
SESSION_EXPIRY_S = 7 * 24 * 3600  # deltas queue at the broker for a week while a car is away
QUEUE_SIZE = 4  # lists waiting to be applied; each can be large, the newest retained one recovers
IGNORED_LOG_INTERVAL_S = 60.0  # junk is logged at most this often (a count, and the last reason)


class SyncRefused(ValueError):
    """Why a received list was not applied (logged; the list in use stays)."""


def topics(cfg: UplinkConfig) -> tuple[str, str]:
    """(snapshot topic, delta topic)."""
    return f"{cfg.topic_prefix}/hotlist/snapshot", f"{cfg.topic_prefix}/hotlist/delta"


def _mac(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def sign(body: bytes, key: str) -> bytes:
    if not key:
        raise SyncRefused("no [hotlist] sync_key configured: set the key shared with the units")
    return _mac(key, body).encode() + b"\n" + body


def verify(payload: bytes, key: str) -> bytes:
    """The body of a correctly signed message; raises SyncRefused otherwise."""
    if not key:
        raise SyncRefused("no [hotlist] sync_key configured, so no list can be verified")
    sig, sep, body = payload.partition(b"\n")
    if not sep or not hmac.compare_digest(sig.strip(), _mac(key, body).encode()):
        raise SyncRefused("signature does not verify (wrong [hotlist] sync_key, or the list was altered)")
    return body


def _body(header: dict[str, Any], entries: Iterable[Entry]) -> bytes:
    lines = [json.dumps({"format": FORMAT, **header, "issued_at": utc_now()})]
    lines += (json.dumps(e.to_json(), separators=(",", ":")) for e in entries)
    return "\n".join(lines).encode()


def snapshot_body(entries: Iterable[Entry], version: int, list_id: str) -> bytes:
    return _body({"type": "snapshot", "version": version, "list_id": list_id}, entries)


def delta_body(add: Iterable[Entry], remove: Iterable[str], version: int, base_version: int, list_id: str) -> bytes:
    return _body({"type": "delta", "version": version, "base_version": base_version, "list_id": list_id,
                  "remove": list(remove)}, add)


def _lines(body: bytes, start: int) -> Iterator[bytes]:
    """The lines of ``body`` from ``start``, sliced one at a time."""
    while start < len(body):
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        yield body[start:end]
        start = end + 1


@dataclass
class SyncOutcome:
    kind: str
    version: int
    loaded: int
    removed: int
    rejected: list[str]


def _header(body: bytes) -> tuple[dict[str, Any], int]:
    """The header object and where the entry lines start."""
    end = body.find(b"\n")
    end = len(body) if end < 0 else end
    try:
        doc = json.loads(body[:end])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SyncRefused(f"signed list has no valid JSON header line ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("type") not in ("snapshot", "delta"):
        raise SyncRefused(f"not an {FORMAT} snapshot or delta")
    if not isinstance(doc.get("version"), int):
        raise SyncRefused("list has no integer version")
    if not isinstance(doc.get("list_id", ""), str):
        raise SyncRefused("list has a list_id that is not text")
    return doc, end + 1


def read_header(payload: bytes, key: str) -> dict[str, Any]:
    """The header of a correctly signed list (the publisher reads the broker's retained one)."""
    return _header(verify(payload, key))[0]


def _newer(doc: dict[str, Any], current: int) -> None:
    if doc["version"] <= current:
        raise SyncRefused(f"version {doc['version']} is not newer than the list in use (version {current})")


def _fresh_enough(doc: dict[str, Any], stale_after_h: float) -> None:
    """A unit with no list yet takes no snapshot older than ``stale_after_h``.

    Versions only go forward on a unit that has a list; a new one has nothing to compare
    with, so an old signed snapshot re-published as retained would be installed. Its
    signed ``issued_at`` tells: the department's next publish is then installed instead.
    """
    try:
        issued = parse_iso(str(doc.get("issued_at")))
    except ValueError:
        raise SyncRefused("snapshot has no valid issued_at time") from None
    age_h = (datetime.now(UTC) - issued).total_seconds() / 3600
    if age_h > stale_after_h:
        raise SyncRefused(f"snapshot version {doc['version']} was issued {age_h:.0f} h ago, more than "
                          f"hotlist.stale_after_h = {stale_after_h:g}: waiting for a newer publish")


def screen(payload: bytes, key: str, current: int) -> None:
    """Cheap check as a message arrives: signed, with a header newer than ``current``; raises SyncRefused."""
    _newer(_header(verify(payload, key))[0], current)


def apply_message(store: Store, cfg: HotlistConfig, payload: bytes, source: str) -> SyncOutcome:
    """Verify and apply one sync message; raises SyncRefused with the reason."""
    body = verify(payload, cfg.sync_key)
    doc, start = _header(body)
    in_use = repository.meta(store)
    version, current, list_id = doc["version"], in_use.version, doc.get("list_id", "")
    _newer(doc, current)
    if doc["type"] == "snapshot" and current <= 0:
        _fresh_enough(doc, cfg.stale_after_h)
    errors: list[RowError] = []
    entries = iter_entries(json_lines(_lines(body, start), first=2), cfg, errors)
    if doc["type"] == "snapshot":
        n = repository.install_snapshot(store, entries, source, version, list_id)
        return SyncOutcome("snapshot", version, n, 0, [str(e) for e in errors])
    if not list_id or list_id != in_use.list_id:
        raise SyncRefused(f"delta to version {version} was made from list {clip(list_id) or '(none)'}, but the list "
                          f"in use is list {in_use.list_id or '(none)'}: waiting for a snapshot")
    if doc.get("base_version") != current:
        raise SyncRefused(f"delta to version {version} continues version {doc.get('base_version')}, but the "
                          f"list in use is version {current}: waiting for a snapshot")
    remove = []
    for i, p in enumerate(doc.get("remove") or [], 1):
        try:
            remove.append(normalize_pattern(p))
        except EntryError as err:
            errors.append(RowError(f"remove {i}", str(err)))
    added, removed = repository.apply_delta(store, list(entries), remove, version, source)
    return SyncOutcome("delta", version, added, removed, [str(e) for e in errors])


class HotlistSync:
    """Daemon service: receive lists from the broker and apply them, one at a time."""

    def __init__(self, config: Config, store: Store, on_change: Callable[[], object] | None = None):
        self.config = config
        self.store = store
        self.on_change = on_change  # e.g. Hotlist.reload, so the new list is used at once
        self.accepted = 0
        self.refused = 0
        self.dropped = 0
        self.ignored = 0
        self._version = 0  # the list in use, as the network thread screens against it
        self._ignored_logged = (-IGNORED_LOG_INTERVAL_S, 0)  # (when, ignored count then)
        self.link: Link | None = None
        self.log = get_logger("alprd.hotlist.sync")
        self._queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _offer(self, item: tuple[str, bytes]) -> None:
        assert self._queue is not None
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            self.log.warning("hotlist_sync_backlog", action="oldest waiting list dropped")
        self._queue.put_nowait(item)

    @property
    def connected(self) -> bool:
        return bool(self.link and self.link.connected)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        payload = bytes(msg.payload)
        try:
            screen(payload, self.config.hotlist.sync_key, self._version)
        except SyncRefused as err:
            self._ignore(msg.topic, str(err))
            return
        self._loop.call_soon_threadsafe(self._offer, (msg.topic, payload))

    def _ignore(self, topic: str, reason: str) -> None:
        """Count a junk message; log the first, then a count at most once per interval."""
        self.ignored += 1
        when, count = self._ignored_logged
        now = time.monotonic()
        if now - when >= IGNORED_LOG_INTERVAL_S:
            self._ignored_logged = (now, self.ignored)
            self.log.warning("hotlist_sync_ignored", topic=topic, reason=reason, ignored=self.ignored - count)

    def handle(self, topic: str, payload: bytes) -> SyncOutcome | None:
        """Apply one message (blocking; run off the event loop); None if refused.
        The counters move last, once the list is in use (or the refusal is on record)."""
        audit = AccessLog(self.store, journal=True)  # a daemon service
        try:
            out = apply_message(self.store, self.config.hotlist, payload, f"sync:{topic}")
        except SyncRefused as err:
            self.log.warning("hotlist_sync_refused", topic=topic, reason=str(err))
            audit.record(None, "hotlist.sync_refused", {"topic": topic}, reason=str(err))
            self.refused += 1
            return None
        self.log.info("hotlist_sync_applied", topic=topic, kind=out.kind, version=out.version,
                      loaded=out.loaded, removed=out.removed, rejected_rows=len(out.rejected))
        for problem in out.rejected[:20]:
            self.log.warning("hotlist_sync_row_rejected", problem=problem)
        audit.record(None, "hotlist.sync", {"topic": topic, "kind": out.kind, "version": out.version,
                                            "rejected": len(out.rejected)}, records=out.loaded + out.removed)
        self._version = out.version
        if self.on_change:
            self.on_change()
        self.accepted += 1
        return out

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._version = (await asyncio.to_thread(repository.meta, self.store)).version
        # One daemon per unit: the device id is a unique, stable id for the queued deltas' session.
        link = self.link = Link(self.config.uplink, f"{self.config.device.id}-hotlist", clean_start=False,
                                session_expiry_s=SESSION_EXPIRY_S, subscriptions=topics(self.config.uplink))
        link.client.on_message = self._on_message
        link.start()
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self._queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if getter not in done:
                    getter.cancel()
                    break
                topic, payload = getter.result()
                try:
                    await asyncio.to_thread(self.handle, topic, payload)
                except Exception as err:  # noqa: BLE001 - disk or database trouble: keep the daemon and the old list
                    self.log.error("hotlist_sync_failed", topic=topic, error=str(err))
        finally:
            link.stop()

    def status(self) -> dict[str, int | bool]:
        return {"connected": self.connected, "accepted": self.accepted, "refused": self.refused,
                "dropped": self.dropped, "ignored": self.ignored}

