"""What waits to leave the vehicle database, and marking what left (alerts through their owner, ``hotlist.alerts``).

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
from alprd.store import Store

_NOT_IN = "id not in (select value from json_each(?))"


class Outbox:
    def __init__(self, store: Store):
        self.store = store

    def next_reads(self, limit: int, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """``id`` and ``ts`` of the oldest reads not uploaded and not already on their way."""
        return self.store.query(
            f"select id, ts from reads where uploaded_at is null and {_NOT_IN} order by ts, id limit ?",
            [json.dumps(list(exclude)), limit],
        )

    def reads(self, ids: list[str]) -> list[dict[str, Any]]:
        return self.store.query(
            "select * from reads where id in (select value from json_each(?)) order by ts, id",
            [json.dumps(ids)],
        )

    def mark_reads(self, ids: list[str]) -> None:
        self.store.mark_uploaded(ids)

    def next_alerts(self, limit: int, exclude: Collection[str] = ()) -> list[dict[str, Any]]:
        """Alerts without a receipt yet, oldest first."""
        return alerts.unpublished_alerts(self.store, limit, exclude)

    def mark_alert(self, alert_id: str) -> None:
        alerts.mark_published(self.store, alert_id)

    def alerts_waiting(self) -> int:
        return alerts.count_unpublished(self.store)

    def oldest_pending(self) -> str | None:
        """Timestamp of the oldest read not uploaded (an index lookup, cheap to call often)."""
        rows = self.store.query("select ts from reads where uploaded_at is null order by ts limit 1")
        return rows[0]["ts"] if rows else None

    def backlog(self) -> tuple[int, str | None]:
        return self.store.backlog()
