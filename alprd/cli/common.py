"""What every data command shares: login options and prompts, opening the store, times.

The packages below (``alprd.auth``, ``alprd.policy``...) take plain values;
reading them from options, the environment ($ALPRD_USER, $ALPRD_TOKEN, and
$ALPRD_PASSWORD / $ALPRD_NEW_PASSWORD for scripted tests only) and prompts
happens here.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from functools import wraps

from alprd.auth import DATA_ROLES, Access, AuthError, Role, User
from alprd.auth import authorize as authorize_user
from alprd.auth import login_user as login
from alprd.config import Config
from alprd.records import iso
from alprd.store import Store, StoreError, open_store

EXIT_REFUSED = 3
Handler = Callable[[argparse.Namespace, Config], int]
Prompt = Callable[[str], str]


def add_auth_args(parser: argparse.ArgumentParser, purpose: bool = True) -> None:
    """Login options, and (``purpose``) the case number / reason options."""
    g = parser.add_argument_group("login" + (" and purpose" if purpose else ""))
    g.add_argument("--user", help="your username (default $ALPRD_USER); the password is asked for")
    g.add_argument("--token", help="session token from `alprd login` (default $ALPRD_TOKEN)")
    if purpose:
        g.add_argument("--case", help="case or CFS number this access is for")
        g.add_argument("--reason", help="written reason, when there is no case number")


def password_asker(prompt: Prompt = getpass.getpass) -> Prompt:
    """``ask(username)``: $ALPRD_PASSWORD, else typed at a terminal."""

    def ask(username: str) -> str:
        password = os.environ.get("ALPRD_PASSWORD")  # scripted tests only; people type it
        if password is not None:
            return password
        if not sys.stdin.isatty():
            raise AuthError("no password: run the command in a terminal to be asked for it, "
                            "or pass --token from `alprd login`")
        return prompt(f"password for {username}: ")

    return ask


def new_password(username: str) -> str:
    """A new password, typed twice ($ALPRD_NEW_PASSWORD in scripted tests)."""
    password = os.environ.get("ALPRD_NEW_PASSWORD")  # scripted tests only
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise AuthError("no new password: run in a terminal to type it")
    first = getpass.getpass(f"new password for {username}: ")
    if getpass.getpass("again: ") != first:
        raise AuthError("the two passwords differ; nothing changed")
    return first


def session_token(args: argparse.Namespace) -> str | None:
    return getattr(args, "token", None) or os.environ.get("ALPRD_TOKEN")


def login_user(args: argparse.Namespace, store: Store, config: Config, prompt: Prompt = getpass.getpass) -> User:
    """The member behind --token/$ALPRD_TOKEN, else --user/$ALPRD_USER and a password."""
    token = session_token(args)
    username = getattr(args, "user", None) or (None if token else os.environ.get("ALPRD_USER"))
    return login(store, config, username, token, password_asker(prompt))


def authorize(args: argparse.Namespace, store: Store, config: Config, action: str,
              roles: Iterable[Role] = DATA_ROLES, require_reason: bool = False,
              prompt: Prompt = getpass.getpass) -> Access:
    """Log in from the options, then check role and purpose (--case/--reason)."""
    user = login_user(args, store, config, prompt)
    return authorize_user(store, config, user, action, roles, getattr(args, "case", None),
                          getattr(args, "reason", None), require_reason)


def guarded(handler: Callable[[argparse.Namespace, Config, Store], int]) -> Handler:
    """Open the store for a handler; refusals and bad input become a message and an exit code."""

    @wraps(handler)
    def run(args: argparse.Namespace, config: Config) -> int:
        try:
            store = open_store(config.store)
        except StoreError as err:
            print(f"alprd: {err}", file=sys.stderr)
            return 1
        try:
            return handler(args, config, store)
        except AuthError as err:
            print(f"alprd: refused: {err}", file=sys.stderr)
            return EXIT_REFUSED
        except ValueError as err:
            print(f"alprd: {err}", file=sys.stderr)
            return 2
        finally:
            store.close()

    return run


def parse_time(text: str | None, end: bool = False) -> str | None:
    """``YYYY-MM-DD`` or ISO date-time (UTC if no zone) to the database's time text.

    A bare date given as an end means the end of that day (the range includes it).
    """
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return iso(start + timedelta(days=1) if end else start)
        when = datetime.fromisoformat(text)
    except (ValueError, OverflowError):  # 9999-12-31 as an end: its next day does not exist
        raise ValueError(f"time {text!r} not understood: write YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from None
    return iso(when if when.tzinfo else when.replace(tzinfo=UTC))
