"""The department's hotlist: the one source of truth the fleet's units sync from.

The department keeps its list in a hotlist repository of its own: NCIC/state
extracts are imported into it (:mod:`alprd.hotlist.ncic`), officers' BOLOs are
shared through it, and every change that changes the list takes the next
version (:mod:`alprd.hotlist.repository`). :func:`publish_list` signs that list
as a retained snapshot, preceded by a delta from the version the broker holds,
and first reads the broker's retained snapshot: a list that is not newer is
refused, because the units would refuse it and a fresh unit would install it.

I/O is at the edges (:func:`import_list`, :func:`share_bolos`, :func:`publish_list`);
what they decide (:func:`summary`, :func:`bolo_entries`, :func:`plan_publish`) is pure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import chain
from typing import Any

from alprd.config import Config, HotlistConfig, clip
from alprd.hotlist import repository
from alprd.hotlist.entries import EntryError, ParseResult, drop_expired, entries_from_rows
from alprd.hotlist.repository import ListChange, ListMeta
from alprd.hotlist.sync import SyncRefused, delta_body, read_header, sign, snapshot_body, topics
from alprd.store import Store
from alprd.uplink.link import Link

BOLO_SCHEMA = "alprd.bolos/1"  # what units upload; each record: id, plate, category, case_number, note,
# priority, expires_at, entered_by, entered_at
BOLO_SOURCE = "bolo:"  # a shared BOLO's entry has source "bolo:<id>": an import keeps it, sharing again replaces it
RETAINED_WAIT_S = 10.0  # the longest the publisher waits for the broker's retained snapshot


class PublishRefused(ValueError):
    """Why a list was not published, with the way out."""


# -- import ---------------------------------------------------------------------------

def summary(result: ParseResult, change: ListChange) -> dict[str, Any]:
    """What an import did, for the operator (``--json`` prints it as it is)."""
    return {
        "version": change.version, "previous_version": change.previous, "added": change.added,
        "removed": change.removed, "unchanged": change.unchanged, "expired_skipped": result.expired,
        "malformed": len(result.errors), "other_files": result.other_files, "without_plate": result.without_plate,
        "personal_columns_dropped": result.personal_columns, "ignored_columns": result.ignored_columns,
    }


def import_list(store: Store, result: ParseResult, source: str, version: int | None = None) -> ListChange:
    """Make a parsed extract the department list, keeping the BOLOs shared through it."""
    shared = list(repository.department_entries(store, source_prefix=BOLO_SOURCE))
    return repository.replace_department_list(store, chain(result.entries, shared), source, version)


# -- BOLOs ----------------------------------------------------------------------------

def _bolo_row(record: Any) -> Mapping[str, Any] | EntryError:
    if not isinstance(record, Mapping):
        return EntryError("a BOLO is an object with named fields")
    if not str(record.get("id") or "").strip():
        return EntryError("BOLO has no id")
    return {**record, "expires": record.get("expires_at") or "", "entered": record.get("entered_at") or "",
            "category": record.get("category") or "bolo", "source": f"{BOLO_SOURCE}{str(record['id']).strip()}"}


def bolo_entries(records: Iterable[Any], cfg: HotlistConfig) -> ParseResult:
    """BOLO records (``alprd.bolos/1``) as department entries, through the same policy checks as an import."""
    rows = ((f"bolo {clip(str(r.get('id') or i))}" if isinstance(r, Mapping) else f"bolo {i}", _bolo_row(r))
            for i, r in enumerate(records, 1))
    return entries_from_rows(rows, cfg)


def share_bolos(store: Store, records: Iterable[Mapping[str, Any]] | Mapping[str, Any], cfg: HotlistConfig,
                on: date | None = None) -> tuple[ParseResult, ListChange]:
    """Put officers' BOLOs on the department list, so the next publish shares them with the fleet.

    A BOLO shared again replaces its entry; one past its expiry is taken off; a bad record is
    reported in the result and changes nothing."""
    result = bolo_entries([records] if isinstance(records, Mapping) else records, cfg)
    sources = [e.source for e in result.entries]
    drop_expired(result, on)
    return result, repository.replace_sources(store, result.entries, sources)


def withdraw_bolos(store: Store, ids: Iterable[str]) -> ListChange:
    """Take shared BOLOs off the department list (cleared cases); the next publish tells the fleet."""
    return repository.replace_sources(store, [], [f"{BOLO_SOURCE}{i}" for i in ids])


# -- publish --------------------------------------------------------------------------

@dataclass(frozen=True)
class Retained:
    """The broker's retained snapshot, as its signed header says."""

    version: int
    list_id: str


@dataclass(frozen=True)
class Plan:
    base: int | None  # send a delta from this version first; None: the snapshot alone
    up_to_date: bool = False  # the broker already holds this version: nothing to send


def plan_publish(list_meta: ListMeta, retained: Retained | None, take_over: bool = False) -> Plan:
    """What to publish over the broker's retained snapshot; PublishRefused if the list is not newer."""
    version, list_id = list_meta.version, list_meta.list_id
    if version <= 0 or not list_id:
        raise PublishRefused("there is no department list here to publish: import one first (alprd hotlist import)")
    if retained is None:
        return Plan(None)
    other = retained.list_id != list_id
    if retained.version > version or (other and retained.version == version):
        raise PublishRefused(
            f"refused: this list is version {version}, not newer than the broker's retained snapshot "
            f"(version {retained.version}{', of another list' if other else ''}): units would refuse it and a "
            f"fresh unit would install an old list. Publish from the department's current database, or, if this "
            f"one is it, import with --version {retained.version + 1} to go past the retained one")
    if other and not take_over:
        raise PublishRefused(
            f"refused: the broker's retained snapshot (version {retained.version}) is another list "
            f"({clip(retained.list_id) or 'without an id'}) than this database's ({list_id}): publish from the "
            "database the fleet's list comes from, or give --take-over if this one replaces it")
    if retained.version == version:
        return Plan(None, up_to_date=True)
    return Plan(retained.version if not other and retained.version >= list_meta.changes_since else None)


@dataclass(frozen=True)
class Published:
    version: int
    base: int | None  # the delta's base version, if a delta was sent
    entries: int  # in the snapshot
    delta_entries: int
    bytes: int
    retained: Retained | None  # what the broker held before
    up_to_date: bool
    note: str = ""  # e.g. the retained snapshot did not verify


def _retained(payloads: list[bytes], key: str) -> tuple[Retained | None, str]:
    if not payloads or not payloads[0]:
        return None, ""
    try:
        doc = read_header(payloads[0], key)
    except SyncRefused as err:
        return None, f"the broker's retained snapshot is not a list of ours ({err}); it is replaced"
    return Retained(doc["version"], doc.get("list_id", "")), ""


def _send(link: Link, topic: str, payload: bytes, retain: bool, timeout_s: float) -> None:
    info = link.client.publish(topic, payload, qos=1, retain=retain)
    info.wait_for_publish(timeout_s)
    if not info.is_published():
        raise TimeoutError(f"broker {link.cfg.host}:{link.cfg.port} did not acknowledge the list in {timeout_s:g} s")


def _connected(link: Link, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not link.connected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"broker {link.cfg.host}:{link.cfg.port} did not accept the connection in "
                               f"{timeout_s:g} s{f': {link.error}' if link.error else ''}")
        time.sleep(0.02)


def publish_list(config: Config, store: Store, take_over: bool = False, retained_wait_s: float = RETAINED_WAIT_S,
                 timeout_s: float = 30.0) -> Published:
    """Sign and publish the department list: a delta from the retained version when the change log
    has it, then the snapshot, retained. Raises PublishRefused, TimeoutError or OSError."""
    key = config.hotlist.sync_key
    if not key:
        raise PublishRefused("no [hotlist] sync_key configured: set the key shared with the units")
    snapshot_topic, delta_topic = topics(config.uplink)
    list_meta = repository.meta(store)
    payloads: list[bytes] = []
    subacks: list[int] = []
    settled = threading.Event()  # the retained snapshot came, or the broker showed it has none

    def on_message(client, userdata, msg) -> None:
        if not settled.is_set():
            payloads.append(bytes(msg.payload))
            settled.set()

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        subacks.append(mid)
        if len(subacks) == 2:  # the broker sends a retained message before it answers the next subscription
            settled.set()

    # The second subscription is a barrier: its acknowledgement (granted or refused) comes after the
    # retained snapshot, so an empty broker answers at once instead of after the whole wait.
    link = Link(config.uplink, f"{config.device.id}-hotlist-publish",
                subscriptions=[snapshot_topic, f"{config.uplink.topic_prefix}/hotlist/publish-barrier"])
    link.client.on_message = on_message
    link.client.on_subscribe = on_subscribe
    link.connect()
    try:
        _connected(link, timeout_s)
        settled.wait(retained_wait_s)
        retained, note = _retained(payloads, key)
        plan = plan_publish(list_meta, retained, take_over)
        if plan.up_to_date:
            return Published(list_meta.version, None, 0, 0, 0, retained, True, note)
        messages, delta_entries = [], 0
        if plan.base is not None:
            add = list(repository.department_entries(store, changed_after=plan.base))
            remove = repository.changed_patterns(store, plan.base)
            messages.append((delta_topic, delta_body(add, remove, list_meta.version, plan.base, list_meta.list_id),
                             False))
            delta_entries = len(add)
        entries = list(repository.department_entries(store))
        messages.append((snapshot_topic, snapshot_body(entries, list_meta.version, list_meta.list_id), True))
        if repository.meta(store).version != list_meta.version:
            raise PublishRefused("the list changed while it was being published (an import or a BOLO share): "
                                 "nothing was sent; publish again")
        for topic, body, retain in messages:
            _send(link, topic, sign(body, key), retain, timeout_s)
    finally:
        link.stop()
    repository.published(store, list_meta.version)
    return Published(list_meta.version, plan.base, len(entries), delta_entries,
                     sum(len(body) for _, body, _ in messages), retained, False, note)
