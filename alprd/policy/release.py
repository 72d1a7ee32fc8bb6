"""Releases to other agencies: only on a recorded request, approved by a supervisor.

Requests are never deleted; a decision is final (a new request is filed to ask
again), so the file shows every request and what became of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from alprd.records import utc_now
from alprd.store import Store

PENDING, APPROVED, DENIED = "pending", "approved", "denied"


class ReleaseError(ValueError):
    """A release request that cannot be filed, decided or used as asked."""


@dataclass(frozen=True)
class ReleaseRequest:
    id: int
    agency: str
    requester: str
    purpose: str
    case_number: str
    status: str
    requested_by: str
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    decision_note: str | None


def file_request(store: Store, agency: str, requester: str, purpose: str, case_number: str, by: str) -> int:
    fields = {"agency": agency, "requester": requester, "purpose": purpose, "case_number": case_number}
    empty = [k for k, v in fields.items() if not (v or "").strip()]
    if empty:
        raise ReleaseError("a release request needs " + ", ".join("--" + k.replace("_", "-") for k in empty))
    with store.transaction() as db:
        return db["release_requests"].insert({**{k: v.strip() for k, v in fields.items()}, "status": PENDING,
                                              "requested_by": by, "requested_at": utc_now()}).last_pk


def get_request(store: Store, request_id: int) -> ReleaseRequest:
    rows = store.query("SELECT * FROM release_requests WHERE id = ?", [request_id])
    if not rows:
        raise ReleaseError(f"no release request {request_id} (see alprd release list)")
    return ReleaseRequest(**rows[0])


def decide(store: Store, request_id: int, approve: bool, note: str, by: str) -> ReleaseRequest:
    """Approve or deny a pending request. The requester may not decide their own request."""
    req = get_request(store, request_id)
    if req.status != PENDING:
        raise ReleaseError(f"release request {request_id} was already {req.status} by {req.decided_by}")
    if req.requested_by == by:
        raise ReleaseError(f"release request {request_id} was filed by {by}: another supervisor decides it")
    if not note.strip():
        raise ReleaseError("a decision needs a note (--note): why it was approved or denied")
    with store.transaction() as db:
        db["release_requests"].update(request_id, {"status": APPROVED if approve else DENIED, "decided_by": by,
                                                   "decided_at": utc_now(), "decision_note": note.strip()})
    return get_request(store, request_id)


def require_approved(store: Store, request_id: int) -> ReleaseRequest:
    req = get_request(store, request_id)
    if req.status != APPROVED:
        raise ReleaseError(f"release request {request_id} is {req.status}: only an approved request can be exported")
    return req


def list_requests(store: Store, status: str | None = None) -> list[ReleaseRequest]:
    sql, params = "SELECT * FROM release_requests", []
    if status:
        sql, params = sql + " WHERE status = ?", [status]
    return [ReleaseRequest(**r) for r in store.query(sql + " ORDER BY id", params)]
