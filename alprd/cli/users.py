"""Commands for accounts and the access log: users, login, logout, audit."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from alprd.audit import AccessLog
from alprd.audit.accesslog import format_record, parse_reported_head
from alprd.auth import ADMIN_ROLES, AUDIT_ROLES, AuthError, Role, Sessions, Users
from alprd.auth.users import may_bootstrap
from alprd.cli.common import (
    add_auth_args,
    authorize,
    guarded,
    login_user,
    new_password,
    parse_time,
    session_token,
)
from alprd.config import Config
from alprd.records import utc_now
from alprd.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="user accounts (administrators)")
    usub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    a = usub.add_parser("add", help="create an account")
    a.add_argument("username")
    a.add_argument("--role", required=True, choices=[r.value for r in Role])
    a.add_argument("--trained-on", metavar="YYYY-MM-DD", help="training completed (required before data use)")
    a.add_argument("--bootstrap", action="store_true", help="create the first administrator (no user exists yet)")
    a.add_argument("--root-recovery", action="store_true",
                   help="with --bootstrap: root on the unit creates an account although users exist")
    add_auth_args(a, purpose=False)
    a.set_defaults(func=cmd_users_add)
    for name, helptext in (("disable", "disable an account (ends its sessions)"), ("enable", "re-enable an account"),
                           ("passwd", "set a new password (also lifts a lockout)")):
        c = usub.add_parser(name, help=helptext)
        c.add_argument("username")
        add_auth_args(c, purpose=False)
        c.set_defaults(func=cmd_users_change, change=name)
    t = usub.add_parser("train", help="record the date a user completed training")
    t.add_argument("username")
    t.add_argument("--on", required=True, metavar="YYYY-MM-DD")
    add_auth_args(t, purpose=False)
    t.set_defaults(func=cmd_users_change, change="train")
    ls = usub.add_parser("list", help="list accounts")
    ls.add_argument("--json", action="store_true")
    add_auth_args(ls, purpose=False)
    ls.set_defaults(func=cmd_users_list)

    p = sub.add_parser("login", help="log in and print a session token for --token / $ALPRD_TOKEN")
    add_auth_args(p, purpose=False)
    p.set_defaults(func=cmd_login)
    p = sub.add_parser("logout", help="revoke a session token")
    add_auth_args(p, purpose=False)
    p.set_defaults(func=cmd_logout)

    p = sub.add_parser("audit", help="the access log (auditors, supervisors, administrators)")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = asub.add_parser("verify", help="check the chain, its MACs and head anchor; names edited, deleted, "
                                       "reordered or re-hashed records")
    v.add_argument("--head", metavar="SEQ:MAC", help="the audit_head of the unit's last heartbeat at the department")
    add_auth_args(v, purpose=False)
    v.set_defaults(func=cmd_audit_verify)
    s = asub.add_parser("show", help="list access records")
    s.add_argument("--by", dest="by_user", metavar="USER", help="only this user's records")
    s.add_argument("--since", help="from this UTC date/time")
    s.add_argument("--until", help="up to this UTC date/time (a date includes that day)")
    s.add_argument("--action", help="action, glob allowed (search, export*, login.failed)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    add_auth_args(s, purpose=False)
    s.set_defaults(func=cmd_audit_show)


@guarded
def cmd_users_add(args: argparse.Namespace, config: Config, store: Store) -> int:
    users = Users(store, config.policy)
    by = None
    if args.bootstrap:
        if not may_bootstrap(users.count(), os.geteuid() == 0, args.root_recovery):
            raise AuthError("users exist already: an administrator adds accounts "
                            "(root on the unit may add --root-recovery)")
        if args.role != Role.ADMINISTRATOR:
            raise AuthError("--bootstrap creates an administrator: use --role administrator")
        by = "root" if args.root_recovery else None
    else:
        by = authorize(args, store, config, "user.add", roles=ADMIN_ROLES).username
    user = users.add(args.username, args.role, new_password(args.username), args.trained_on, by=by)
    trained = user.trained_on or "NOT TRAINED (may not use data until `alprd users train`)"
    print(f"user {user.username} added: {user.role.value}, training {trained}")
    return 0


@guarded
def cmd_users_change(args: argparse.Namespace, config: Config, store: Store) -> int:
    users = Users(store, config.policy)
    if args.change == "passwd" and (args.user or "") == args.username and not args.token:
        by = login_user(args, store, config).username  # anyone may change their own password
    else:
        by = authorize(args, store, config, f"user.{args.change}", roles=ADMIN_ROLES).username
    users.require(args.username)
    if args.change == "passwd":
        users.set_password(args.username, new_password(args.username), by=by)
    elif args.change == "train":
        users.set_trained(args.username, args.on, by=by)
    else:
        users.set_disabled(args.username, args.change == "disable", by=by)
    print(f"user {args.username}: {args.change} done")
    return 0


@guarded
def cmd_users_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "user.list", roles=ADMIN_ROLES + (Role.AUDITOR,))
    users = Users(store, config.policy).list()
    access.record("", records=len(users))
    for u in users:
        if args.json:
            print(json.dumps(asdict(u)))
            continue
        locked = u.locked_until and u.locked_until > utc_now()
        state = "disabled" if u.disabled else (f"locked until {u.locked_until[:16]}Z" if locked else "active")
        print(f"{u.username:<16} {u.role.value:<14} trained {u.trained_on or 'NO':<10}  {state}")
    return 0


@guarded
def cmd_login(args: argparse.Namespace, config: Config, store: Store) -> int:
    user = login_user(args, store, config)
    token, expires = Sessions(store, config.policy).issue(user.username)
    print(token)
    print(f"session for {user.username} until {expires[:16]}Z; use --token or export ALPRD_TOKEN=...",
          file=sys.stderr)
    return 0


@guarded
def cmd_logout(args: argparse.Namespace, config: Config, store: Store) -> int:
    token = session_token(args)
    if not token:
        raise AuthError("logout needs --token (or $ALPRD_TOKEN)")
    user = login_user(args, store, config)
    Sessions(store, config.policy).revoke(token)
    AccessLog(store).record(user.username, "logout")
    print("logged out")
    return 0


@guarded
def cmd_audit_verify(args: argparse.Namespace, config: Config, store: Store) -> int:
    reported = parse_reported_head(args.head) if args.head else None
    check = AccessLog(store).check(reported)  # before the login below writes to the log
    access = authorize(args, store, config, "audit.verify", roles=AUDIT_ROLES)
    access.record({"problems": len(check.problems), "head": args.head}, records=check.records)
    for p in check.problems:
        print(f"TAMPERED: {p}")
    print(f"access log: {check.records} records, " + (f"{len(check.problems)} problem(s)" if check.problems
                                                      else "chain intact"))
    print(f"  {check.coverage()}")
    print("  department's copy of the head: " + ("compared" if reported else
          "not compared (give --head SEQ:MAC from the unit's last heartbeat at the department)"))
    return 1 if check.problems else 0


@guarded
def cmd_audit_show(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "audit.show", roles=AUDIT_ROLES)
    query = {"user": args.by_user, "since": parse_time(args.since), "until": parse_time(args.until, end=True),
             "action": args.action}
    records = AccessLog(store).show(**query)
    access.record({k: v for k, v in query.items() if v}, records=len(records))
    for r in records:
        print(json.dumps(r.as_dict()) if args.json else format_record(r))
    return 0
