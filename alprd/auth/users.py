"""Accounts, roles and password login with lockout.

Only trained members may touch data: a user without a training-completed date
can exist (an administrator creates the account, then records the training)
but is refused by :func:`require_usable`. Every login, failure, lockout and
account change goes to the access log. No personal data is kept: a user is a
username, a role and dates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from alprd.audit.accesslog import AccessLog
from alprd.auth.passwords import check_password, dummy_hash, hash_password
from alprd.config import PolicyConfig
from alprd.records import iso, utc_now
from alprd.store import Store

Clock = Callable[[], datetime]
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")


class AuthError(PermissionError):
    """Login or permission refused; the message says why and what to do."""


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMINISTRATOR = "administrator"
    AUDITOR = "auditor"


# Who may do what, by kind of work. Auditors read the logs and reports, not the plates.
DATA_ROLES = (Role.OPERATOR, Role.SUPERVISOR, Role.ADMINISTRATOR)
SUPERVISOR_ROLES = (Role.SUPERVISOR, Role.ADMINISTRATOR)
AUDIT_ROLES = (Role.AUDITOR, Role.SUPERVISOR, Role.ADMINISTRATOR)
ADMIN_ROLES = (Role.ADMINISTRATOR,)


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    trained_on: str | None
    disabled: bool
    created_at: str
    failed_logins: int
    locked_until: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(row["username"], Role(row["role"]), row["trained_on"], bool(row["disabled"]),
                   row["created_at"], row["failed_logins"] or 0, row["locked_until"])


def require_usable(user: User) -> None:
    """Refuse a disabled or untrained account (pure check, no logging)."""
    if user.disabled:
        raise AuthError(f"user {user.username} is disabled; an administrator can re-enable it "
                        f"(alprd users enable {user.username})")
    if not user.trained_on:
        raise AuthError(f"user {user.username} has no training-completed date and may not use stored data; "
                        f"an administrator records it with: alprd users train {user.username} --on YYYY-MM-DD")


def parse_training_date(text: str) -> str:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise AuthError(f"training date {text!r} is not a date: write YYYY-MM-DD") from None
    if day > datetime.now(UTC).date():
        raise AuthError(f"training date {text} is in the future; record it once the training is completed")
    return day.isoformat()


def may_bootstrap(user_count: int, is_root: bool, root_recovery: bool) -> bool:
    """The first administrator needs no login; later ones only root on the unit may force."""
    return user_count == 0 or (root_recovery and is_root)


class Users:
    """The ``users`` table, with the policy's password and lockout rules."""

    def __init__(self, store: Store, policy: PolicyConfig, clock: Clock = lambda: datetime.now(UTC)):
        self.store = store
        self.policy = policy
        self.clock = clock
        self.log = AccessLog(store)

    # -- reading --------------------------------------------------------------
    def count(self) -> int:
        return self.store.query("SELECT count(*) AS n FROM users")[0]["n"]

    def get(self, username: str) -> User | None:
        rows = self.store.query("SELECT * FROM users WHERE username = ?", [username])
        return User.from_row(rows[0]) if rows else None

    def require(self, username: str) -> User:
        user = self.get(username)
        if user is None:
            raise AuthError(f"no user {username!r} (see alprd users list)")
        return user

    def list(self) -> list[User]:
        return [User.from_row(r) for r in self.store.query("SELECT * FROM users ORDER BY username")]

    # -- changes (each one audited) -------------------------------------------
    def _check_password(self, password: str) -> None:
        if len(password) < self.policy.min_password_chars:
            raise AuthError(f"password too short: at least {self.policy.min_password_chars} characters "
                            "([policy] min_password_chars)")

    def add(self, username: str, role: Role | str, password: str, trained_on: str | None, by: str | None) -> User:
        if not USERNAME.match(username):
            raise AuthError(f"username {username!r} not allowed: 2-32 of a-z 0-9 _ . - starting with a letter "
                            "or digit (a badge or login id, not a person's name)")
        try:
            role = Role(role)
        except ValueError:
            raise AuthError(f"role {role!r} unknown: one of {', '.join(r.value for r in Role)}") from None
        if self.get(username) is not None:
            raise AuthError(f"user {username} already exists")
        self._check_password(password)
        trained = parse_training_date(trained_on) if trained_on else None
        with self.store.transaction() as db:
            db["users"].insert({"username": username, "role": role.value, "password_hash": hash_password(password),
                                "trained_on": trained, "disabled": 0, "created_at": utc_now(),
                                "failed_logins": 0, "locked_until": None})
        self.log.record(by, "user.add", {"username": username, "role": role.value, "trained_on": trained})
        return self.require(username)

    def _update(self, username: str, action: str, by: str | None, **values: Any) -> User:
        self.require(username)
        with self.store.transaction() as db:
            db["users"].update(username, values)
        shown = {k: v for k, v in values.items() if k != "password_hash"}
        self.log.record(by, action, {"username": username, **shown})
        return self.require(username)

    def _end_sessions(self, username: str) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE username = ?", [username])

    def set_password(self, username: str, password: str, by: str | None) -> User:
        """New password; also lifts a lockout and ends the user's sessions (a reset locks out a thief's token)."""
        self._check_password(password)
        user = self._update(username, "user.passwd", by, password_hash=hash_password(password),
                            failed_logins=0, locked_until=None)
        self._end_sessions(username)
        return user

    def set_disabled(self, username: str, disabled: bool, by: str | None) -> User:
        if disabled and self.require(username).role is Role.ADMINISTRATOR and not self.store.query(
                "SELECT 1 FROM users WHERE role = ? AND disabled = 0 AND username != ?",
                [Role.ADMINISTRATOR.value, username]):
            raise AuthError(f"{username} is the only enabled administrator: add or enable another administrator "
                            "first, or nobody could manage accounts")
        user = self._update(username, "user.disable" if disabled else "user.enable", by, disabled=int(disabled))
        if disabled:
            self._end_sessions(username)
        return user

    def set_trained(self, username: str, trained_on: str, by: str | None) -> User:
        return self._update(username, "user.train", by, trained_on=parse_training_date(trained_on))

    # -- login ------------------------------------------------------------------
    def authenticate(self, username: str, password: str) -> User:
        """Check a password under the lockout rule; every outcome is audited."""
        user = self.get(username)
        if user is None:
            check_password(password, dummy_hash())
            self.log.record(username, "login.failed", reason="unknown user")
            raise AuthError("login failed: unknown user or wrong password")
        now = self.clock()
        locked_until, locks_now = self._reserve_attempt(username, now)
        if locked_until:
            self.log.record(username, "login.refused", reason=f"locked until {locked_until}")
            raise AuthError(f"user {username} is locked after too many failed logins until "
                            f"{locked_until[:16]}Z; wait, or an administrator resets the password")
        stored = self.store.query("SELECT password_hash FROM users WHERE username = ?", [username])[0]
        if not check_password(password, stored["password_hash"]):
            self.log.record(username, "login.failed",
                            reason=f"wrong password; locked until {locks_now}" if locks_now else "wrong password")
            raise AuthError("login failed: unknown user or wrong password"
                            + (f"; too many failures, locked for {self.policy.lockout_minutes} min" if locks_now
                               else ""))
        with self.store.transaction() as db:  # the right password: the reserved attempt was no failure
            db["users"].update(username, {"failed_logins": 0, "locked_until": None})
        try:
            require_usable(user)
        except AuthError as err:
            self.log.record(username, "login.refused", reason=str(err))
            raise
        self.log.record(username, "login")
        return self.require(username)

    def _reserve_attempt(self, username: str, now: datetime) -> tuple[str | None, str | None]:
        """Count this attempt as failed before the password is checked, in one transaction.

        Returns (locked until, if refused now; the lock this attempt sets, if it is
        the last one allowed). Parallel logins then take the attempts one at a
        time: at most ``max_failed_logins`` passwords are checked per lockout,
        however many arrive at once. A success resets the count.
        """
        with self.store.transaction() as db:
            failed, locked_until = db.execute("SELECT failed_logins, locked_until FROM users WHERE username = ?",
                                              [username]).fetchone()
            if locked_until and locked_until > iso(now):
                return locked_until, None
            failed = (failed or 0) + 1
            locks = failed >= self.policy.max_failed_logins
            until = iso(now + timedelta(minutes=self.policy.lockout_minutes)) if locks else None
            db["users"].update(username, {"failed_logins": 0 if locks else failed, "locked_until": until})
        return None, until
