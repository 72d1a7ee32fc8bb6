"""Session tokens: ``alprd login`` once, then ``--token`` (or $ALPRD_TOKEN) until it expires.

Only the SHA-256 of a token is stored, so a copy of the database does not hand
out working tokens. A token is only as good as its user: a disabled or
untrained account's token is refused too (by the caller's usable check).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from alprd.auth.users import AuthError, Clock
from alprd.config import PolicyConfig
from alprd.records import iso
from alprd.store import Store


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, store: Store, policy: PolicyConfig, clock: Clock = lambda: datetime.now(UTC)):
        self.store = store
        self.policy = policy
        self.clock = clock

    def issue(self, username: str) -> tuple[str, str]:
        """A new token and its expiry (UTC ISO); expired sessions are dropped on the way."""
        token = "alprd_" + secrets.token_urlsafe(32)  # a prefix: never read as an option, easy to spot
        now = self.clock()
        expires = iso(now + timedelta(minutes=self.policy.session_minutes))
        with self.store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", [iso(now)])
            db["sessions"].insert({"token_hash": token_hash(token), "username": username,
                                   "created_at": iso(now), "expires_at": expires})
        return token, expires

    def resolve(self, token: str) -> str:
        """The username a live token belongs to."""
        rows = self.store.query("SELECT username, expires_at FROM sessions WHERE token_hash = ?", [token_hash(token)])
        if not rows:
            raise AuthError("session token unknown or revoked: log in again with alprd login")
        if rows[0]["expires_at"] <= iso(self.clock()):
            raise AuthError(f"session token expired at {rows[0]['expires_at'][:16]}Z: log in again with alprd login")
        return rows[0]["username"]

    def revoke(self, token: str) -> bool:
        with self.store.transaction() as db:
            return db.execute("DELETE FROM sessions WHERE token_hash = ?", [token_hash(token)]).rowcount > 0
