"""The one gate every data command goes through: who, may they, and why.

``add_auth_args`` gives a command ``--user --token --case --reason``;
``authorize`` logs the member in (token, or password typed at a prompt),
refuses disabled, untrained or wrong-role users (and writes the refusal to the
access log), checks that a case/CFS number or a written reason is given where
the action needs one, and returns an :class:`Access` whose ``record`` writes
the access record once the command knows how many records it returned.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from alprd.audit.accesslog import AccessLog
from alprd.audit.sessions import Sessions
from alprd.audit.users import DATA_ROLES, AuthError, Role, User, Users, require_usable
from alprd.config import Config
from alprd.store import Store


def add_auth_args(parser: argparse.ArgumentParser, purpose: bool = True) -> None:
    """Login options, and (``purpose``) the case number / reason options."""
    g = parser.add_argument_group("login" + (" and purpose" if purpose else ""))
    g.add_argument("--user", help="your username (default $ALPRD_USER); the password is asked for")
    g.add_argument("--token", help="session token from `alprd login` (default $ALPRD_TOKEN)")
    if purpose:
        g.add_argument("--case", help="case or CFS number this access is for")
        g.add_argument("--reason", help="written reason, when there is no case number")


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


def _password(username: str, prompt: Callable[[str], str]) -> str:
    password = os.environ.get("ALPRD_PASSWORD")  # scripted tests only; people type it
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise AuthError("no password: run the command in a terminal to be asked for it, "
                        "or pass --token from `alprd login`")
    return prompt(f"password for {username}: ")


def login_user(args: argparse.Namespace, store: Store, config: Config,
               prompt: Callable[[str], str] = getpass.getpass) -> User:
    """The member behind --token/$ALPRD_TOKEN, else --user/$ALPRD_USER and a password."""
    users = Users(store, config.policy)
    token = getattr(args, "token", None) or os.environ.get("ALPRD_TOKEN")
    named = getattr(args, "user", None) or os.environ.get("ALPRD_USER")
    if token:
        username = Sessions(store, config.policy).resolve(token)
        if getattr(args, "user", None) and args.user != username:
            raise AuthError(f"the token belongs to {username}, not {args.user}")
        user = users.require(username)
        require_usable(user)
        return user
    if not named:
        raise AuthError("log in: --user NAME (or $ALPRD_USER), or --token from `alprd login`")
    return users.authenticate(named, _password(named, prompt))


def authorize(
    args: argparse.Namespace,
    store: Store,
    config: Config,
    action: str,
    roles: Iterable[Role] = DATA_ROLES,
    require_reason: bool = False,
    prompt: Callable[[str], str] = getpass.getpass,
) -> Access:
    """Log in, check role and purpose; raises :class:`AuthError` with the reason."""
    log = AccessLog(store)
    user = login_user(args, store, config, prompt)
    allowed = tuple(Role(r) for r in roles)
    if user.role not in allowed:
        message = (f"user {user.username} ({user.role.value}) may not {action}: "
                   f"needs role {' or '.join(r.value for r in allowed)}")
        log.record(user.username, "denied", {"action": action}, reason=message)
        raise AuthError(message)
    case, reason = getattr(args, "case", None), getattr(args, "reason", None)
    if require_reason:
        case, reason = check_purpose(case, reason, config.policy.min_reason_chars)
    return Access(user, action, case, reason, log)
