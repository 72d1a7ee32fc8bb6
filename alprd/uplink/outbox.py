"""What waits to leave the vehicle database (reads, alerts, officers' dispositions and BOLOs), and marking
what left (alerts through their owner, ``hotlist.alerts``).

A read or alert counts as delivered only when its ``uploaded_at`` /
``published_at`` is set, and that happens only on the receiver's receipt (it
has committed it), never on the broker's PUBACK; everything else is picked up
again, after a crash too.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from alprd.hotlist import alerts
from alprd.records import utc_now
from alprd.store import Store

RECORD_TABLES = {"dispositions": "alert_dispositions", "bolos": "bolo_uploads"}  # wire kind -> table


class Outbox:
    def __init__(self, store: Store):
        self.store = store

    def next_reads(self, limit: int, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """``id`` and ``ts`` of the oldest reads not uploaded and not already on their way."""
        return self.store.unsent_reads(limit, exclude)

    def reads(self, ids: list[str]) -> list[dict[str, Any]]:
        return self.store.reads_by_id(ids)

    def mark_reads(self, ids: list[str]) -> None:
        self.store.mark_uploaded(ids)

    def next_alerts(self, limit: int, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """Alerts without a receipt yet, oldest first."""
        return alerts.unpublished_alerts(self.store, limit, exclude)

    def mark_alert(self, alert_id: str) -> None:
        alerts.mark_published(self.store, alert_id)

    def alerts_waiting(self) -> int:
        return alerts.count_unpublished(self.store)

    def next_records(self, kind: str, limit: int, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """Officers' dispositions or BOLOs without a receipt yet, oldest first."""
        return self.store.query(f"select * from {RECORD_TABLES[kind]} where uploaded_at is null "
                                "and id not in (select value from json_each(?)) order by rowid limit ?",
                                [json.dumps(list(exclude)), limit])

    def mark_records(self, kind: str, ids: list[str]) -> None:
        with self.store.transaction() as db:
            db.conn.executemany(f"update {RECORD_TABLES[kind]} set uploaded_at = ? where id = ?",
                                [(utc_now(), i) for i in ids])

    def records_waiting(self) -> int:
        return sum(self.store.query(f"select count(*) as n from {t} where uploaded_at is null")[0]["n"]
                   for t in RECORD_TABLES.values())

    def oldest_pending(self) -> str | None:
        return self.store.oldest_unsent_ts()

    def backlog(self) -> tuple[int, str | None]:
        return self.store.backlog()
