"""Evidence holds: reads tied to a case are exempt from the purge until released.

A hold is kept on file after release (``released_at`` set), so what was held,
by whom and why stays auditable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from alprd.records import utc_now
from alprd.store import Store


class EvidenceError(ValueError):
    """A hold that cannot be made or changed as asked."""


@dataclass(frozen=True)
class Hold:
    id: int
    case_number: str
    reason: str
    created_by: str
    created_at: str
    released_at: str | None
    reads: int


def add_hold(store: Store, case_number: str, reason: str, read_ids: list[str], by: str) -> int:
    """Hold these reads for a case; every id must exist (nothing is held on a typo)."""
    if not case_number.strip() or not reason.strip():
        raise EvidenceError("an evidence hold needs a case number (--case) and a reason (--reason)")
    ids = sorted(set(read_ids))
    if not ids:
        raise EvidenceError("no reads to hold: give --read ID (repeatable) or search options that match reads")
    with store.transaction() as db:
        found = {r[0] for r in db.execute("SELECT id FROM reads WHERE id IN (SELECT value FROM json_each(?))",
                                          [json.dumps(ids)])}
        missing = [i for i in ids if i not in found]
        if missing:
            raise EvidenceError(f"no such read(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                                "(purged already, or mistyped); nothing held")
        hold_id = db["evidence_holds"].insert({"case_number": case_number.strip(), "reason": reason.strip(),
                                               "created_by": by, "created_at": utc_now(),
                                               "released_at": None}).last_pk
        db["hold_reads"].insert_all({"hold_id": hold_id, "read_id": i} for i in ids)
    return hold_id


def release_hold(store: Store, hold_id: int) -> Hold:
    """End a hold; its reads fall back under the retention rule."""
    hold = get_hold(store, hold_id)
    if hold.released_at:
        raise EvidenceError(f"hold {hold_id} was already released at {hold.released_at[:16]}Z")
    with store.transaction() as db:
        db["evidence_holds"].update(hold_id, {"released_at": utc_now()})
    return get_hold(store, hold_id)


_HOLDS = ("SELECT h.*, (SELECT count(*) FROM hold_reads hr WHERE hr.hold_id = h.id) AS reads "
          "FROM evidence_holds h")


def get_hold(store: Store, hold_id: int) -> Hold:
    rows = store.query(f"{_HOLDS} WHERE h.id = ?", [hold_id])
    if not rows:
        raise EvidenceError(f"no evidence hold {hold_id} (see alprd hold list)")
    return Hold(**rows[0])


def list_holds(store: Store, case_number: str | None = None, active_only: bool = False) -> list[Hold]:
    where = ["TRUE"]
    params: list[Any] = []
    if case_number:
        where.append("h.case_number = ?")
        params.append(case_number)
    if active_only:
        where.append("h.released_at IS NULL")
    return [Hold(**r) for r in store.query(f"{_HOLDS} WHERE {' AND '.join(where)} ORDER BY h.id", params)]


def held_reads(store: Store, case_number: str) -> list[dict[str, Any]]:
    """Every read under an active hold for this case, oldest first."""
    return store.query(
        "SELECT * FROM reads WHERE id IN (SELECT hr.read_id FROM hold_reads hr JOIN evidence_holds h "
        "ON h.id = hr.hold_id WHERE h.case_number = ? AND h.released_at IS NULL) ORDER BY ts",
        [case_number])
