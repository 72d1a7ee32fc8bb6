"""The one gate every data command goes through: who, may they, and why.

``login_user`` finds the member (session token, or name and password; a
disabled, locked or untrained account is refused); ``authorize`` refuses a
wrong role (and writes the refusal to the access log), checks that a case/CFS
number or a written reason is given where the action needs one, and returns an
:class:`Access` whose ``record`` writes the access record once the command
knows how many records it returned. Both take plain values: where they come
from (options, environment, a prompt) is the CLI's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from alprd.audit.accesslog import AccessLog
from alprd.auth.sessions import Sessions
from alprd.auth.users import DATA_ROLES, AuthError, Role, User, Users, require_usable
from alprd.config import Config
from alprd.store import Store

MIN_CASE_ALNUM = 2  # "-" or "?" is no case number; "C-1" is


def _alnum(text: str) -> int:
    return sum(c.isalnum() for c in text)


def check_purpose(case: str | None, reason: str | None, min_chars: int) -> tuple[str | None, str | None]:
    """A case/CFS number, or a reason of at least ``min_chars`` letters and digits (pure).

    Only letters and digits count, so punctuation or spaces cannot stand in for a purpose.
    """
    case = (case or "").strip() or None
    reason = " ".join((reason or "").split()) or None
    if case is not None and _alnum(case) < MIN_CASE_ALNUM:
        raise AuthError(f"--case {case!r} is not a case/CFS number: give the number on file "
                        f"(at least {MIN_CASE_ALNUM} letters or digits, e.g. CFS-2026-77)")
    if case is None and (reason is None or _alnum(reason) < min_chars):
        raise AuthError(f"give a case/CFS number (--case) or a written reason of at least {min_chars} "
                        "letters or digits (--reason \"...\") for this access")
    return case, reason


@dataclass(frozen=True)
class Access:
    """A logged-in, authorised member and the purpose they gave."""

    user: User
    action: str
    case_number: str | None
    reason: str | None
    log: AccessLog

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role(self) -> Role:
        return self.user.role

    def record(self, query: str | dict[str, Any] | None, records: int = 0, action: str | None = None) -> int:
        """Write the access record (user, UTC time, action, query, case/reason, count); returns its seq."""
        return self.log.record(self.username, action or self.action, query, self.case_number, self.reason, records)


def login_user(store: Store, config: Config, username: str | None, token: str | None,
               password: Callable[[str], str]) -> User:
    """The member behind a session ``token``, else ``username`` with ``password(username)``.

    With a token, a ``username`` given as well must be the token's owner.
    """
    users = Users(store, config.policy)
    if token:
        owner = Sessions(store, config.policy).resolve(token)
        if username and username != owner:
            raise AuthError(f"the token belongs to {owner}, not {username}")
        user = users.require(owner)
        require_usable(user)
        return user
    if not username:
        raise AuthError("log in: --user NAME (or $ALPRD_USER), or --token from `alprd login`")
    return users.authenticate(username, password(username))


def authorize(
    store: Store,
    config: Config,
    user: User,
    action: str,
    roles: Iterable[Role] = DATA_ROLES,
    case: str | None = None,
    reason: str | None = None,
    require_reason: bool = False,
) -> Access:
    """Check a logged-in member's role and purpose; raises :class:`AuthError` with the reason."""
    log = AccessLog(store)
    allowed = tuple(Role(r) for r in roles)
    if user.role not in allowed:
        message = (f"user {user.username} ({user.role.value}) may not {action}: "
                   f"needs role {' or '.join(r.value for r in allowed)}")
        log.record(user.username, "denied", {"action": action}, reason=message)
        raise AuthError(message)
    if require_reason:
        case, reason = check_purpose(case, reason, config.policy.min_reason_chars)
    return Access(user, action, case, reason, log)
