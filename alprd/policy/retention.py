"""Retention: reads (with their crops) are deleted once past the retention period.

A read is purged only when it is older than the cutoff, has been uploaded, and
is under no active evidence hold. An old read that was never uploaded is kept
and counted (``not_uploaded``): that is a transfer-window alarm for the uplink,
never a reason to lose data. A read stamped after its own upload (a clock set
forward when it was captured: a GPS week rollover, an RTC reset) cannot be that
young, so it ages from its upload instead, or it would never be purged.
Alerts on a purged read go with it; their monthly
counts, and the read counts, are kept in ``usage_archive`` for the annual
report. Each run is written to ``purge_log``, the access log and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alprd.audit import AccessLog
from alprd.config import PolicyConfig
from alprd.log import get_logger
from alprd.records import iso, utc_now
from alprd.store import Store, StoreError

PENDING = "pending"  # the archived disposition of an alert nobody dispositioned (NULL)
BATCH = 2000  # reads per transaction: the pipeline's inserts wait at most one batch

_HELD = ("EXISTS (SELECT 1 FROM hold_reads hr JOIN evidence_holds h ON h.id = hr.hold_id "
         "WHERE hr.read_id = reads.id AND h.released_at IS NULL)")
_ARCHIVE = ("INSERT INTO usage_archive (month, metric, n) {select} "
            "ON CONFLICT (month, metric) DO UPDATE SET n = usage_archive.n + excluded.n")
_IDS = "(SELECT value FROM json_each(:ids))"
_PAST = "(ts < :cutoff OR uploaded_at < :cutoff)"  # the earlier of capture and upload: before the cutoff
UNIT_OF_ALERT = ("coalesce(device_id, (SELECT r.device_id FROM reads r WHERE r.id = alerts.read_id), '?')")  # a unit's
# alerts carry no device_id of their own; the department's do (an alert may arrive before its read)
_EARLIER = "CASE WHEN uploaded_at < ts THEN uploaded_at ELSE ts END"  # the month it is archived under


def cutoff_for(now: datetime, retention_days: int) -> str:
    """Reads stamped before this UTC time are past retention."""
    return iso(now - timedelta(days=retention_days))


@dataclass(frozen=True)
class PurgeResult:
    cutoff: str
    deleted: int
    held: int
    not_uploaded: int
    alerts_deleted: int
    oldest_not_uploaded: str | None


def _purge_batch(store: Store, cutoff: str) -> tuple[int, int]:
    """Archive the counts of, then delete, one batch of purgeable reads; (reads, alerts) deleted."""
    with store.transaction() as db:
        ids = [row[0] for row in db.execute(
            f"SELECT id FROM reads WHERE {_PAST} AND uploaded_at IS NOT NULL AND NOT {_HELD} LIMIT :n",
            {"cutoff": cutoff, "n": BATCH})]
        if not ids:
            return 0, 0
        p = {"ids": json.dumps(ids)}
        db.execute(_ARCHIVE.format(select=f"SELECT substr({_EARLIER}, 1, 7), 'reads', count(*) FROM reads "
                                          f"WHERE id IN {_IDS} GROUP BY 1"), p)
        db.execute(_ARCHIVE.format(select=f"SELECT substr(ts, 1, 7), 'hits:' || coalesce(category, '?'), count(*) "
                                          f"FROM alerts WHERE read_id IN {_IDS} GROUP BY 1, 2"), p)
        db.execute(_ARCHIVE.format(select="SELECT substr(ts, 1, 7), 'disposition:' || coalesce(disposition, "
                                          f"'{PENDING}'), count(*) FROM alerts WHERE read_id IN {_IDS} "
                                          "GROUP BY 1, 2"), p)
        db.execute(_ARCHIVE.format(select=f"SELECT substr({_EARLIER}, 1, 7), 'unit_reads:' || "
                                          f"coalesce(device_id, '?'), count(*) FROM reads WHERE id IN {_IDS} "
                                          "GROUP BY 1, 2"), p)
        db.execute(_ARCHIVE.format(select=f"SELECT substr(ts, 1, 7), 'unit_hits:' || {UNIT_OF_ALERT}, count(*) "
                                          f"FROM alerts WHERE read_id IN {_IDS} GROUP BY 1, 2"), p)
        alerts = db.execute(f"DELETE FROM alerts WHERE read_id IN {_IDS}", p).rowcount
        db.execute(f"DELETE FROM hold_reads WHERE read_id IN {_IDS}", p)  # only released holds reach here
        db.execute(f"DELETE FROM reads WHERE id IN {_IDS}", p)
        return len(ids), alerts


def purge(store: Store, retention_days: int, now: datetime | None = None, by: str | None = None,
          stop: Callable[[], bool] = lambda: False, journal: bool = False) -> PurgeResult:
    """Delete every purgeable read; returns what was deleted and what was kept, and why.

    ``by`` is the member who ran it by hand (None: the daemon's schedule);
    ``stop`` is asked between batches, so a shutdown does not wait for a long purge;
    ``journal`` logs the run too (the daemon)."""
    cutoff = cutoff_for(now or datetime.now(UTC), retention_days)
    deleted = alerts = 0
    try:
        while True:
            n, a = _purge_batch(store, cutoff)
            deleted, alerts = deleted + n, alerts + a
            if not n or stop():
                break
    except store.integrity_error as err:
        raise StoreError(f"purge stopped after {deleted} reads: another table still points at a read ({err}); "
                         "that table's owner must delete or unlink its rows with the read") from None
    held = store.query(f"SELECT count(*) AS n FROM reads WHERE {_PAST} AND {_HELD}", {"cutoff": cutoff})[0]["n"]
    late = store.query("SELECT count(*) AS n, min(ts) AS oldest FROM reads WHERE ts < ? AND uploaded_at IS NULL",
                       [cutoff])[0]
    result = PurgeResult(cutoff, deleted, held, late["n"], alerts, late["oldest"])
    with store.transaction() as db:
        db["purge_log"].insert({"ts": utc_now(), "cutoff": cutoff, "deleted": deleted, "held": held,
                                "not_uploaded": result.not_uploaded})
    AccessLog(store, journal).record(by, "purge", {"cutoff": cutoff, "alerts_deleted": alerts}, records=deleted)
    if journal:  # the daemon's journal; a command prints its own summary
        log = get_logger("alprd.policy")
        log.info("purge", **asdict(result))
        if result.not_uploaded:
            log.warning("purge_kept_not_uploaded", count=result.not_uploaded, oldest=result.oldest_not_uploaded)
    return result


class RetentionService:
    """The daemon's purge: once at start, then every ``purge_interval_h``; its last run in the status."""

    def __init__(self, store: Store, policy: PolicyConfig):
        self.store = store
        self.policy = policy
        self.last: PurgeResult | None = None
        self.last_at: str | None = None
        self.error: str | None = None
        self.log = get_logger("alprd.policy")

    async def run(self, stop: asyncio.Event) -> None:
        while True:
            try:
                self.last = await asyncio.to_thread(purge, self.store, self.policy.retention_days, stop=stop.is_set,
                                               journal=True)
                self.last_at, self.error = utc_now(), None
            except Exception as err:  # noqa: BLE001 - a failed purge is retried next time, never fatal
                self.error = str(err)
                self.log.error("purge_failed", error=self.error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.policy.purge_interval_h * 3600)
            if stop.is_set():
                return

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"retention_days": self.policy.retention_days, "last_purge_at": self.last_at,
                               "error": self.error}
        if self.last:
            out.update(asdict(self.last))
        return out
