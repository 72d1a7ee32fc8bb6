"""Hotlist and alert commands: import, add/remove/list, status, publish; alert list/disposition.

Changes to the list and every look at alerts go through login and the access
log. ``hotlist publish`` is the department side of the sync: it signs a list
with ``[hotlist] sync_key`` and publishes it to the broker.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alprd.auth import DATA_ROLES, SUPERVISOR_ROLES
from alprd.cli.common import add_auth_args, authorize, guarded, parse_time
from alprd.config import Config
from alprd.hotlist import repository
from alprd.hotlist.alerts import (
    Disposition,
    alert_ids_starting,
    alerts_after,
    last_alert_rowid,
    list_alerts,
    set_disposition,
)
from alprd.hotlist.entries import (
    EntryError,
    ParseResult,
    make_entry,
    normalize_pattern,
    parse_file_text,
)
from alprd.hotlist.hotlist import Hotlist
from alprd.hotlist.sync import delta_body, publish, snapshot_body
from alprd.log import setup_logging
from alprd.store import Store

MAX_ERRORS_SHOWN = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hotlist", help="the list of wanted plates: import, officer entries, sync")
    hs = p.add_subparsers(dest="hotlist_command", metavar="ACTION", required=True)

    c = hs.add_parser("import", help="replace the department list with a CSV (NCIC extract) or JSON file")
    c.add_argument("file", type=Path)
    c.add_argument("--format", choices=("auto", "csv", "json"), default="auto")
    c.add_argument("--category", help="category for rows without one (e.g. stolen_vehicle)")
    c.add_argument("--source", help="source list name for rows without one (default: the file name)")
    c.add_argument("--version", type=int, help="list version (sync only accepts newer ones)")
    add_auth_args(c)
    c.set_defaults(func=cmd_import)

    c = hs.add_parser("add", help="add an officer-entered plate (BOLO); needs --case or --reason")
    c.add_argument("plate", help="plate or partial plate: ? is one character, * any run (AB?12*)")
    c.add_argument("--category", default="bolo")
    c.add_argument("--state", default="")
    c.add_argument("--priority", type=int)
    c.add_argument("--expires", default="", help="YYYY-MM-DD")
    c.add_argument("--note", default="", help="what the officer should know (no personal data)")
    add_auth_args(c)
    c.set_defaults(func=cmd_add)

    c = hs.add_parser("remove", help="remove an officer-entered plate; needs --case or --reason")
    c.add_argument("plate")
    add_auth_args(c)
    c.set_defaults(func=cmd_remove)

    c = hs.add_parser("list", help="list officer-entered plates (--all: the whole list)")
    c.add_argument("--all", action="store_true")
    c.add_argument("--plate", help="only this pattern")
    c.add_argument("--limit", type=int, default=200)
    add_auth_args(c)
    c.set_defaults(func=cmd_list)

    c = hs.add_parser("status", help="version, age and size of the list in use")
    c.set_defaults(func=cmd_status)

    c = hs.add_parser("publish", help="department side: sign and publish a list (snapshot or delta)")
    c.add_argument("file", type=Path, nargs="?", help="the list (snapshot) or the entries to add (delta)")
    c.add_argument("--format", choices=("auto", "csv", "json"), default="auto")
    c.add_argument("--category", help="category for rows without one")
    c.add_argument("--version", type=int, required=True, help="must be newer than the units' list")
    c.add_argument("--delta", action="store_true", help="publish a change to --base-version, not a whole list")
    c.add_argument("--base-version", type=int, help="the version this delta applies to")
    c.add_argument("--remove", nargs="*", default=[], metavar="PATTERN", help="delta: patterns to remove")
    c.set_defaults(func=cmd_publish)

    p = sub.add_parser("alert", help="hotlist alerts: list them, record an officer's disposition")
    asub = p.add_subparsers(dest="alert_command", metavar="ACTION", required=True)
    c = asub.add_parser("list", help="newest alerts first")
    c.add_argument("--open", action="store_true", help="only alerts without a disposition")
    c.add_argument("--since", help="YYYY-MM-DD or ISO time (UTC)")
    c.add_argument("--limit", type=int, default=50)
    c.add_argument("--follow", action="store_true", help="then print each new alert as it is stored (Ctrl-C ends)")
    add_auth_args(c)
    c.set_defaults(func=cmd_alert_list)

    c = asub.add_parser("disposition", help="record what came of an alert")
    c.add_argument("alert_id", help="alert id (a unique prefix is enough)")
    c.add_argument("disposition", choices=[d.value for d in Disposition])
    c.add_argument("--note", default="", help="short note (no personal data)")
    add_auth_args(c)
    c.set_defaults(func=cmd_alert_disposition)


def _parse_file(args: argparse.Namespace, config: Config) -> ParseResult:
    """Read and validate a list file, printing each rejected row with its line to stderr."""
    kind = args.format
    if kind == "auto":
        kind = "json" if args.file.suffix.lower() in (".json", ".jsonl") else "csv"
    try:
        text = args.file.read_bytes()
    except OSError as err:
        raise ValueError(f"{args.file}: cannot read ({err}); give a UTF-8 CSV or JSON file") from None
    defaults = {k: v for k, v in (("category", args.category),
                                  ("source", getattr(args, "source", None) or args.file.name)) if v}
    try:
        result = parse_file_text(text, kind, config.hotlist, defaults)
    except EntryError as err:
        raise ValueError(f"{args.file}: {err}") from None
    for err in result.errors[:MAX_ERRORS_SHOWN]:
        print(f"{args.file} {err}; row skipped", file=sys.stderr)
    if len(result.errors) > MAX_ERRORS_SHOWN:
        print(f"... and {len(result.errors) - MAX_ERRORS_SHOWN} more rows skipped", file=sys.stderr)
    if result.ignored_columns:
        print(f"{args.file}: columns not used: {', '.join(result.ignored_columns)}", file=sys.stderr)
    if not result.entries:
        raise ValueError(f"{args.file}: no usable rows; the list in use is unchanged")
    return result


@guarded
def cmd_import(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hotlist.import", roles=SUPERVISOR_ROLES)
    current = repository.meta(store).version
    if args.version is not None and args.version < current:
        raise ValueError(f"--version {args.version} is older than the list in use (version {current}): versions "
                         "only go forward (leave --version out to keep the version)")
    result = _parse_file(args, config)
    n = repository.replace_department_list(store, result.entries, f"import:{args.file.name}", args.version)
    access.record({"file": str(args.file), "rejected": len(result.errors), "version": args.version}, records=n)
    print(f"hotlist: {n} entries loaded from {args.file}, {len(result.errors)} rows skipped")
    return 0


@guarded
def cmd_add(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hotlist.add", roles=DATA_ROLES, require_reason=True)
    row = {"pattern": args.plate, "category": args.category, "state": args.state, "expires": args.expires,
           "note": args.note, "case_number": access.case_number or "", "source": f"officer:{access.username}"}
    if args.priority is not None:
        row["priority"] = args.priority
    entry = make_entry(row, config.hotlist, officer_entered=True)
    entry_id = repository.add_officer_entry(store, entry, access.username)
    access.record({"plate": entry.pattern, "category": entry.category, "id": entry_id}, records=1)
    print(f"hotlist: {entry.pattern} added ({entry.category}, priority {entry.priority}, id {entry_id})")
    return 0


@guarded
def cmd_remove(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hotlist.remove", roles=DATA_ROLES, require_reason=True)
    pattern = normalize_pattern(args.plate)
    n = repository.remove_officer_entries(store, pattern)
    access.record({"plate": pattern}, records=n)
    print(f"hotlist: {n} officer-entered entr{'y' if n == 1 else 'ies'} for {pattern} removed")
    return 0 if n else 1


@guarded
def cmd_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hotlist.list", roles=DATA_ROLES)
    pattern = normalize_pattern(args.plate) if args.plate else None
    rows = repository.list_entries(store, officer_only=not args.all, pattern=pattern, limit=args.limit)
    access.record({"all": args.all, "plate": pattern}, records=len(rows))
    for r in rows:
        who = "officer" if r["officer_entered"] else r["source"]
        print(f"{r['id']:>7}  {r['pattern']:<10} {r['state'] or '--':<3} {r['category']:<15} "
              f"p{r['priority']}  case {r['case_number'] or '-':<12} expires {r['expires'] or 'never':<10} "
              f"{who}  {r['note'] or ''}")
    print(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    return 0


@guarded
def cmd_status(args: argparse.Namespace, config: Config, store: Store) -> int:
    s = Hotlist(store, config.hotlist).status()
    print(f"{s['severity']}: {s['message']}")
    print(f"  entries: {s['entries']}  source: {s['source'] or '-'}  updated: {s['updated_at'] or 'never'}")
    return 0 if s["severity"] == "ok" else 1


def cmd_publish(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config.logging.model_copy(update={"level": "warning"}))  # the link's problems, on stderr
    try:
        entries = _parse_file(args, config).entries if args.file else []
        if args.delta:
            if args.base_version is None:
                raise ValueError("--delta needs --base-version (the version the units have now)")
            body = delta_body(entries, [normalize_pattern(p) for p in args.remove], args.version,
                              args.base_version)
        elif not entries:
            raise ValueError("a snapshot needs a FILE with the whole list")
        else:
            body = snapshot_body(entries, args.version)
        publish(config, body, args.delta)
    except (ValueError, OSError, TimeoutError) as err:
        print(f"alprd: {err}", file=sys.stderr)
        return 1
    print(f"hotlist: version {args.version} {'delta' if args.delta else 'snapshot'} published "
          f"({len(entries)} entries, {len(body)} bytes) to {config.uplink.host}:{config.uplink.port}")
    return 0


def _alert_line(r: dict) -> str:
    return (f"{r['id'][:8]}  {r['ts'][:19]}Z  {r['plate']:<9} {r['match_kind']:<10} -> {r['pattern']:<9} "
            f"{r['category']:<15} p{r['priority']}  case {r['case_number'] or '-':<12} "
            f"{'sent' if r['published_at'] else 'unsent'}  {r['disposition'] or 'open'}")


FOLLOW_POLL_S = 0.5


@guarded
def cmd_alert_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "alert.list", roles=DATA_ROLES)
    last = last_alert_rowid(store)
    rows = list_alerts(store, since=parse_time(args.since), open_only=args.open, limit=args.limit)
    access.record({"open": args.open, "since": args.since}, records=len(rows))
    for r in rows:
        print(_alert_line(r))
    print(f"{len(rows)} alert(s). Every hit must be verified through NCIC/state systems before enforcement.",
          flush=True)
    if args.follow:
        _follow(access, store, last)
    return 0


def _follow(access, store: Store, last: int) -> None:
    """Print alerts as they are stored, each batch shown written to the access log; Ctrl-C ends quietly."""
    try:
        while True:
            rows, last = alerts_after(store, last)
            if rows:
                access.record({"follow": True, "alert_ids": [r["id"] for r in rows]}, records=len(rows))
                for r in rows:
                    print(f"ALERT {_alert_line(r)}", flush=True)
                continue
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return


@guarded
def cmd_alert_disposition(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "alert.disposition", roles=DATA_ROLES)
    ids = alert_ids_starting(store, args.alert_id)
    if len(ids) != 1:
        raise ValueError(f"alert {args.alert_id!r}: {'no such alert' if not ids else 'ambiguous, give more of the id'}"
                         " (see `alprd alert list`)")
    set_disposition(store, ids[0], Disposition(args.disposition), access.username, args.note)
    access.record({"alert_id": ids[0], "disposition": args.disposition}, records=1)
    print(f"alert {ids[0]}: {args.disposition}")
    return 0
