"""Hotlist and alert commands: import, add/remove/list, status, share-bolo, publish; alert list/disposition.

Changes to the list and every look at alerts go through login and the access
log. ``import``, ``share-bolo`` and ``publish`` are the department side: the
department's list takes a new version with every change, and ``publish`` signs
it with ``[hotlist] sync_key`` and sends it to the broker (:mod:`alprd.hotlist.department`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from alprd.auth import DATA_ROLES, SUPERVISOR_ROLES
from alprd.cli.common import add_auth_args, authorize, guarded, parse_time
from alprd.config import Config, clip
from alprd.hotlist import repository
from alprd.hotlist.alerts import (
    Disposition,
    alert_ids_starting,
    alerts_after,
    last_alert_rowid,
    list_alerts,
    set_disposition,
)
from alprd.hotlist.department import (
    BOLO_SCHEMA,
    RETAINED_WAIT_S,
    PublishRefused,
    import_list,
    publish_list,
    share_bolos,
    summary,
    withdraw_bolos,
)
from alprd.hotlist.entries import (
    EntryError,
    ParseResult,
    decode_file,
    make_entry,
    normalize_pattern,
    parse_file_text,
)
from alprd.hotlist.hotlist import Hotlist
from alprd.hotlist.ncic import parse_extract
from alprd.hotlist.repository import ListChange
from alprd.log import setup_logging
from alprd.server import received_bolos
from alprd.store import Store

MAX_ERRORS_SHOWN = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hotlist", help="the list of wanted plates: import, officer entries, sync")
    hs = p.add_subparsers(dest="hotlist_command", metavar="ACTION", required=True)

    c = hs.add_parser("import", help="replace the department list with an NCIC/state extract, a CSV or JSON file")
    c.add_argument("file", type=Path)
    c.add_argument("--format", choices=("auto", "ncic", "csv", "json"), default="auto",
                   help="ncic: a delimited NCIC/state hot-file extract (FILE|LIC|LIS|...); auto: by the file name")
    c.add_argument("--category", help="csv/json: category for rows without one (e.g. stolen_vehicle)")
    c.add_argument("--source", help="csv/json: source list name for rows without one (default: the file name)")
    c.add_argument("--version", type=int, help="jump to this version (newer than the list's); default: the next")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_auth_args(c)
    c.set_defaults(func=cmd_import)

    c = hs.add_parser("share-bolo", help=f"department side: put officers' BOLOs ({BOLO_SCHEMA} JSON) on the list")
    c.add_argument("file", nargs="?", help=f'JSON: {{"schema": "{BOLO_SCHEMA}", "bolos": [...]}}, a list of '
                                           "BOLOs, one BOLO, or - for standard input")
    c.add_argument("--received", nargs="+", metavar="ID", help="on the server: BOLOs the units uploaded, by id")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_auth_args(c)
    c.set_defaults(func=cmd_share_bolo)

    c = hs.add_parser("withdraw-bolo", help="department side: take shared BOLOs off the list")
    c.add_argument("ids", nargs="+", metavar="ID")
    add_auth_args(c)
    c.set_defaults(func=cmd_withdraw_bolo)

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

    c = hs.add_parser("publish", help="department side: sign and publish the department list (delta + snapshot)")
    c.add_argument("--take-over", action="store_true",
                   help="publish although the broker's retained snapshot is another database's list")
    c.add_argument("--retained-wait", type=float, default=RETAINED_WAIT_S, metavar="S",
                   help="how long to wait for the broker's retained snapshot (default %(default)g s)")
    add_auth_args(c)
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


def _report_rows(name: str, result: ParseResult) -> None:
    """Each rejected row with its line, on stderr."""
    for err in result.errors[:MAX_ERRORS_SHOWN]:
        print(f"{name} {err}; row skipped", file=sys.stderr)
    if len(result.errors) > MAX_ERRORS_SHOWN:
        print(f"... and {len(result.errors) - MAX_ERRORS_SHOWN} more rows skipped", file=sys.stderr)


def _parse_file(args: argparse.Namespace, config: Config) -> ParseResult:
    """Read and validate a list file, printing each rejected row with its line to stderr."""
    kind = args.format
    if kind == "auto":
        kind = "json" if args.file.suffix.lower() in (".json", ".jsonl") else "csv"
    try:
        text = args.file.read_bytes()
    except OSError as err:
        raise ValueError(f"{args.file}: cannot read ({err}); give a UTF-8 NCIC extract, CSV or JSON file") from None
    defaults = {k: v for k, v in (("category", args.category), ("source", args.source or args.file.name)) if v}
    try:
        result = (parse_extract(text, config.hotlist) if kind == "ncic"
                  else parse_file_text(text, kind, config.hotlist, defaults))
    except EntryError as err:
        raise ValueError(f"{args.file}: {err}") from None
    _report_rows(str(args.file), result)
    if result.ignored_columns:
        print(f"{args.file}: columns not used: {', '.join(result.ignored_columns)}", file=sys.stderr)
    if not result.entries:
        raise ValueError(f"{args.file}: no usable rows; the list in use is unchanged")
    return result


def _print_change(what: str, result: ParseResult, change: ListChange, as_json: bool) -> None:
    info = summary(result, change)
    if as_json:
        print(json.dumps(info))
        return
    version = (f"version {change.version} (was {change.previous})" if change.changed
               else f"unchanged, version stays {change.version}")
    print(f"hotlist: {what}: {version}: {change.added} added, {change.removed} removed, {change.unchanged} unchanged")
    skipped = [f"{result.expired} expired", f"{len(result.errors)} malformed"]
    if result.other_files:
        files = ", ".join(f"{code} {n}" for code, n in sorted(result.other_files.items()))
        skipped.append(f"{sum(result.other_files.values())} of NCIC files not imported ({files})")
    if result.without_plate:
        skipped.append(f"{result.without_plate} person records without a vehicle")
    print(f"  skipped: {', '.join(skipped)}")
    if result.personal_columns:
        print(f"  personal data dropped, never stored: {', '.join(result.personal_columns)}")


@guarded
def cmd_import(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hotlist.import", roles=SUPERVISOR_ROLES)
    result = _parse_file(args, config)
    change = import_list(store, result, f"import:{args.file.name}", args.version)
    access.record({"file": str(args.file), "rejected": len(result.errors), "version": change.version},
                  records=change.added + change.removed)
    _print_change(str(args.file), result, change, args.json)
    return 0


def _bolo_records(name: str) -> list[Any]:
    """The BOLO records of a JSON file (or - for standard input)."""
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        doc = json.loads(decode_file(data))
    except OSError as err:
        raise ValueError(f"{name}: cannot read ({err})") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{name}: not valid JSON ({clip(str(err))})") from None
    except EntryError as err:
        raise ValueError(f"{name}: {err}") from None
    if isinstance(doc, dict) and "bolos" in doc:
        if doc.get("schema") != BOLO_SCHEMA:
            raise ValueError(f"{name}: schema {clip(repr(doc.get('schema')))} is not {BOLO_SCHEMA}")
        doc = doc["bolos"]
    return doc if isinstance(doc, list) else [doc]


@guarded
def cmd_share_bolo(args: argparse.Namespace, config: Config, store: Store) -> int:
    if bool(args.file) == bool(args.received):
        raise ValueError("give a BOLO file, or --received ID... (BOLOs the units uploaded), not both")
    access = authorize(args, store, config, "hotlist.share_bolo", roles=SUPERVISOR_ROLES)
    records = received_bolos(store, args.received) if args.received else _bolo_records(args.file)
    result, change = share_bolos(store, records, config.hotlist)
    _report_rows(args.file or "received", result)
    access.record({"file": args.file, "received": args.received, "bolos": [e.source for e in result.entries][:100],
                   "rejected": len(result.errors), "version": change.version}, records=len(result.entries))
    _print_change("BOLOs", result, change, args.json)
    return 0 if result.entries or not result.errors else 1


@guarded
def cmd_withdraw_bolo(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hotlist.withdraw_bolo", roles=SUPERVISOR_ROLES)
    change = withdraw_bolos(store, args.ids)
    access.record({"bolos": args.ids, "version": change.version}, records=change.removed)
    _print_change("BOLOs withdrawn", ParseResult(), change, False)
    return 0 if change.removed else 1


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


@guarded
def cmd_publish(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hotlist.publish", roles=SUPERVISOR_ROLES)
    setup_logging(config.logging.model_copy(update={"level": "warning"}))  # the link's problems, on stderr
    try:
        out = publish_list(config, store, take_over=args.take_over, retained_wait_s=args.retained_wait)
    except (PublishRefused, OSError, TimeoutError, RuntimeError) as err:
        print(f"alprd: {err}", file=sys.stderr)
        return 1
    access.record({"version": out.version, "base_version": out.base, "up_to_date": out.up_to_date},
                  records=out.entries)
    if out.note:
        print(f"hotlist: {out.note}", file=sys.stderr)
    broker = f"{config.uplink.host}:{config.uplink.port}"
    if out.up_to_date:
        print(f"hotlist: version {out.version} is the broker's retained snapshot already ({broker}); nothing to send")
        return 0
    delta = (f"delta from version {out.base} ({out.delta_entries} entries) and " if out.base is not None
             else "")
    print(f"hotlist: version {out.version} published to {broker}: {delta}snapshot ({out.entries} entries), "
          f"{out.bytes} bytes; the broker held {f'version {out.retained.version}' if out.retained else 'none'}")
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
