"""Policy commands: search, purge, hold, export, release, report.

Each one logs the member in, checks role and purpose, does the work through
``alprd.policy`` and writes an access record with the number of records.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from alprd import keys
from alprd.audit import AccessLog
from alprd.auth import AUDIT_ROLES, DATA_ROLES, SUPERVISOR_ROLES
from alprd.cli.common import add_auth_args, authorize, guarded, parse_time
from alprd.config import Config
from alprd.policy import evidence, release, report
from alprd.policy.export import compare_with_log, verify_bundle, write_bundle
from alprd.policy.retention import purge
from alprd.policy.search import SearchQuery, public_read, search
from alprd.store import Store, open_store

READERS = tuple(dict.fromkeys(DATA_ROLES + AUDIT_ROLES))  # may look at holds and requests on file


def add_search_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("which reads")
    g.add_argument("--plate", help="full or partial plate: ? one character, * any run (AB?12*, *X7Q*)")
    g.add_argument("--from", dest="since", metavar="WHEN", help="UTC date or date-time, inclusive")
    g.add_argument("--to", dest="until", metavar="WHEN", help="UTC date (that whole day) or date-time, exclusive")
    g.add_argument("--camera", help="camera id")
    g.add_argument("--unit", help="unit (device id): at the department, the reads of one car or site")
    g.add_argument("--box", metavar="LAT0,LON0,LAT1,LON1", help="area: south-west and north-east corners")
    g.add_argument("--limit", type=int, default=1000, help="at most this many reads, newest first (default 1000)")


def query_from_args(args: argparse.Namespace) -> SearchQuery:
    box = None
    if args.box:
        try:
            box = tuple(float(v) for v in args.box.split(","))
        except ValueError:
            box = ()
        if len(box) != 4:
            raise ValueError(f"--box {args.box!r}: write four numbers LAT0,LON0,LAT1,LON1")
    return SearchQuery(plate=args.plate, since=parse_time(args.since), until=parse_time(args.until, end=True),
                       camera=args.camera, device=args.unit, box=box, limit=args.limit)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search stored reads (needs --case or --reason)")
    add_search_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per read")
    p.add_argument("--crops", type=Path, metavar="DIR", help="write each read's plate crop to DIR/<id>.jpg")
    add_auth_args(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("purge", help="delete reads past retention now (the daemon does it daily)")
    add_auth_args(p, purpose=False)
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("hold", help="evidence holds: reads exempt from purge")
    hsub = p.add_subparsers(dest="hold_command", metavar="ACTION", required=True)
    h = hsub.add_parser("add", help="hold reads for a case: by --read ID or by search options")
    h.add_argument("--read", action="append", default=[], metavar="ID", help="read id (repeatable)")
    add_search_args(h)
    add_auth_args(h)
    h.set_defaults(func=cmd_hold_add)
    h = hsub.add_parser("release", help="end a hold (supervisor)")
    h.add_argument("hold_id", type=int)
    add_auth_args(h)
    h.set_defaults(func=cmd_hold_release)
    h = hsub.add_parser("list", help="holds on file")
    h.add_argument("--active", action="store_true", help="only holds not released")
    h.add_argument("--for-case", metavar="CASE", help="only this case's holds")
    add_auth_args(h, purpose=False)
    h.set_defaults(func=cmd_hold_list)

    p = sub.add_parser("export", help="write a case's held reads to a folder for portable media; "
                                      "`export verify DIR` checks one")
    p.add_argument("--release", type=int, metavar="ID", help="export for an approved release request")
    p.add_argument("--to", type=Path, metavar="DIR", help="new or empty folder (e.g. on the USB drive)")
    add_auth_args(p)
    p.set_defaults(func=cmd_export)
    esub = p.add_subparsers(dest="export_command", metavar="verify")
    v = esub.add_parser("verify", help="check a bundle: every file's hash, its audit record and its signature")
    v.add_argument("folder", type=Path)
    v.add_argument("--public-key", type=Path, metavar="FILE",
                   help="the exporting unit's public key (alprd keys export-public); default: this unit's own")
    v.set_defaults(func=cmd_export_verify)

    p = sub.add_parser("release", help="requests to release data to other agencies")
    rsub = p.add_subparsers(dest="release_command", metavar="ACTION", required=True)
    r = rsub.add_parser("request", help="record a request from another agency")
    r.add_argument("--agency", required=True)
    r.add_argument("--requester", required=True, help="requesting officer's badge or unit (no personal data)")
    r.add_argument("--purpose", required=True)
    add_auth_args(r)
    r.set_defaults(func=cmd_release_request)
    for name in ("approve", "deny"):
        r = rsub.add_parser(name, help=f"{name} a pending request (supervisor)")
        r.add_argument("request_id", type=int)
        r.add_argument("--note", required=True, help="why")
        add_auth_args(r, purpose=False)
        r.set_defaults(func=cmd_release_decide, approve=name == "approve")
    r = rsub.add_parser("list", help="requests on file")
    r.add_argument("--status", choices=[release.PENDING, release.APPROVED, release.DENIED])
    add_auth_args(r, purpose=False)
    r.set_defaults(func=cmd_release_list)

    p = sub.add_parser("report", help="usage report (Markdown, CSV, PNG chart) for a period")
    p.add_argument("--from", dest="since", metavar="DATE")
    p.add_argument("--to", dest="until", metavar="DATE", help="inclusive date")
    p.add_argument("--year", type=int, help="the calendar year (instead of --from/--to)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for report.md, report.csv, chart.png")
    add_auth_args(p, purpose=False)
    p.set_defaults(func=cmd_report)


@guarded
def cmd_search(args: argparse.Namespace, config: Config, store: Store) -> int:
    query = query_from_args(args)
    access = authorize(args, store, config, "search", roles=DATA_ROLES, require_reason=True)
    rows = search(store, query)
    access.record(query.as_dict(), records=len(rows))
    if args.crops:
        args.crops.mkdir(parents=True, exist_ok=True)
    for row in rows:
        crop = None
        if args.crops and row["crop_jpeg"]:
            crop = args.crops / f"{row['id']}.jpg"
            crop.write_bytes(row["crop_jpeg"])
        if args.json:
            print(json.dumps(public_read(row, str(crop) if crop else None)))
        else:
            where = f"{row['lat']:.5f},{row['lon']:.5f}" if row["lat"] is not None else "no GPS"
            print(f"{row['ts'][:19]}Z  {row['plate']:<9} conf {row['confidence']:.2f}  {row['camera_id']:<10} "
                  f"{where:<22} {row['id']}")
    print(f"{len(rows)} read(s)" + (" (limit reached: narrow the search)" if len(rows) == query.limit else ""),
          file=sys.stderr)
    return 0


@guarded
def cmd_purge(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "purge", roles=SUPERVISOR_ROLES)
    result = purge(store, config.policy.retention_days, by=access.username)  # writes the access record
    print(f"purged {result.deleted} read(s) older than {result.cutoff[:16]}Z ({result.alerts_deleted} alert(s)); "
          f"kept {result.held} under evidence hold")
    if result.not_uploaded:
        print(f"WARNING: {result.not_uploaded} read(s) past retention were never uploaded (oldest "
              f"{result.oldest_not_uploaded[:16]}Z): kept; check the uplink", file=sys.stderr)
    return 0


@guarded
def cmd_hold_add(args: argparse.Namespace, config: Config, store: Store) -> int:
    by_search = any((args.plate, args.since, args.until, args.box))
    query = query_from_args(args) if by_search else None
    access = authorize(args, store, config, "hold.add", roles=DATA_ROLES, require_reason=True)
    if not (access.case_number and access.reason):
        raise evidence.EvidenceError("an evidence hold needs both --case and --reason")
    found = search(store, query) if query else []
    if query and len(found) == query.limit:
        raise evidence.EvidenceError(f"the search matched {query.limit} reads or more; nothing held: narrow it, "
                                     "or raise --limit to hold them all")
    ids = list(args.read) + [r["id"] for r in found]
    hold_id = evidence.add_hold(store, access.case_number, access.reason, ids, by=access.username)
    hold = evidence.get_hold(store, hold_id)
    access.record({"hold": hold_id, "reads": args.read, **({"search": query.as_dict()} if query else {})},
                  records=hold.reads)
    print(f"hold {hold_id}: {hold.reads} read(s) held for case {hold.case_number}")
    return 0


@guarded
def cmd_hold_release(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hold.release", roles=SUPERVISOR_ROLES, require_reason=True)
    hold = evidence.release_hold(store, args.hold_id)
    access.record({"hold": hold.id, "case": hold.case_number}, records=hold.reads)
    print(f"hold {hold.id} released: its {hold.reads} read(s) fall under the retention rule again")
    return 0


@guarded
def cmd_hold_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "hold.list", roles=READERS)
    holds = evidence.list_holds(store, args.for_case, args.active)
    access.record({"case": args.for_case, "active": args.active}, records=len(holds))
    for h in holds:
        state = f"released {h.released_at[:10]}" if h.released_at else "active"
        print(f"{h.id:>5}  case {h.case_number:<14} {h.reads:>6} read(s)  {state:<20} by {h.created_by}  {h.reason}")
    return 0


@guarded
def cmd_export(args: argparse.Namespace, config: Config, store: Store) -> int:
    if not args.to:
        raise ValueError("export needs --to DIR (a new or empty folder)")
    req = release.require_approved(store, args.release) if args.release else None
    if req:
        if args.case and args.case != req.case_number:
            raise ValueError(f"release request {req.id} is for case {req.case_number}, not {args.case}")
        args.case = req.case_number
    if not args.case:
        raise ValueError("export needs --case N (the reads held for that case) or --release ID")
    access = authorize(args, store, config, "export", roles=DATA_ROLES, require_reason=True)
    reads = evidence.held_reads(store, args.case)
    if not reads:
        raise evidence.EvidenceError(f"no reads are held for case {args.case}: hold them first (alprd hold add)")
    about = {"case": args.case, "device": config.device.id, "agency": config.device.agency,
             "exported_by": access.username}
    if req:
        about["release"] = {"id": req.id, "agency": req.agency, "requester": req.requester, "purpose": req.purpose,
                            "approved_by": req.decided_by}

    def record(query: dict, count: int) -> dict:
        return access.log.get(access.record(query, records=count)).as_dict()

    manifest = write_bundle(args.to, reads, about, record, keys.signing_key(config.store.signing_key_path))
    print(f"exported {manifest['reads']} read(s) for case {args.case} to {args.to} "
          f"({len(manifest['files'])} files listed in manifest.json)")
    return 0


def _verify_key(args: argparse.Namespace, config: Config) -> tuple[Ed25519PublicKey | None, str | None]:
    """The key to check the signature with: --public-key, else this unit's own; and why there is none."""
    if args.public_key:
        return keys.load_public_key(args.public_key), None
    path = config.store.signing_key_path
    if not path.exists():
        return None, None
    try:
        return keys.signing_key(path).public_key(), None
    except keys.KeyFileError as err:
        return None, f"this unit's signing key: {err}"


def cmd_export_verify(args: argparse.Namespace, config: Config) -> int:
    try:
        public_key, key_problem = _verify_key(args, config)
    except keys.KeyFileError as err:
        print(f"alprd: {err}", file=sys.stderr)
        return 2
    result = verify_bundle(args.folder, public_key)
    if key_problem:
        result.unchecked.append(key_problem)
    audit = result.audit
    if audit and (config.store.url or config.store.path.exists()):  # where the data is (a unit, the server)
        store = open_store(config.store)
        try:
            mine = AccessLog(store).find(audit.get("seq"))
        finally:
            store.close()
        problem = compare_with_log(audit, {"hash": mine.hash, "mac": mine.mac} if mine else None)
        if problem:
            result.problems.append(problem)
        else:
            where = "this server's" if config.store.url else "this unit's"
            result.checked.append(f"audit record {audit['seq']} matches {where} access log (hash and MAC)")
    elif audit:
        result.unchecked.append("the unit's access log: not checked here (run export verify on the unit to "
                                "compare the audit record with its log)")
    for line in result.checked:
        print(f"checked: {line}")
    for line in result.unchecked:
        print(f"not checked: {line}")
    for p in result.problems:
        print(f"FAILED: {p}")
    if result.problems:
        return 1
    authentic = any(line.startswith("signature") for line in result.checked)
    print(f"{args.folder}: bundle intact (export by {audit['username']} at {audit['ts'][:19]}Z)" if authentic else
          f"{args.folder}: consistent, but NOT shown to come from the unit: check it with --public-key FILE")
    return 0


@guarded
def cmd_release_request(args: argparse.Namespace, config: Config, store: Store) -> int:
    if not args.case:
        raise release.ReleaseError("a release request needs the case number it concerns (--case)")
    access = authorize(args, store, config, "release.request", roles=DATA_ROLES, require_reason=True)
    rid = release.file_request(store, args.agency, args.requester, args.purpose, args.case, by=access.username)
    access.record({"release": rid, "agency": args.agency, "purpose": args.purpose})
    print(f"release request {rid} filed; a supervisor decides it (alprd release approve|deny {rid})")
    return 0


@guarded
def cmd_release_decide(args: argparse.Namespace, config: Config, store: Store) -> int:
    action = "release.approve" if args.approve else "release.deny"
    access = authorize(args, store, config, action, roles=SUPERVISOR_ROLES)
    req = release.decide(store, args.request_id, args.approve, args.note, by=access.username)
    access.record({"release": req.id, "note": args.note})
    print(f"release request {req.id} {req.status}")
    return 0


@guarded
def cmd_release_list(args: argparse.Namespace, config: Config, store: Store) -> int:
    access = authorize(args, store, config, "release.list", roles=READERS)
    reqs = release.list_requests(store, args.status)
    access.record({"status": args.status}, records=len(reqs))
    for r in reqs:
        print(f"{r.id:>4}  {r.status:<8} {r.agency:<24} case {r.case_number:<12} {r.purpose}  "
              f"(filed by {r.requested_by} {r.requested_at[:10]}" + (f", {r.status} by {r.decided_by})"
                                                                      if r.decided_by else ")"))
    return 0


def report_period(args: argparse.Namespace) -> tuple[str, str]:
    if args.year:
        return parse_time(f"{args.year:04d}-01-01"), parse_time(f"{args.year + 1:04d}-01-01")
    if not args.since:
        raise ValueError("report needs --year YYYY or --from DATE [--to DATE]")
    until = parse_time(args.until, end=True) if args.until else parse_time(datetime.now(UTC).date().isoformat(),
                                                                            end=True)
    return parse_time(args.since), until


@guarded
def cmd_report(args: argparse.Namespace, config: Config, store: Store) -> int:
    since, until = report_period(args)
    access = authorize(args, store, config, "report", roles=AUDIT_ROLES)
    rep = report.gather(store, since, until)
    paths = report.write_report(rep, args.out)
    access.record({"since": since, "until": until}, records=rep.total_reads)
    print("\n".join(str(p) for p in paths))
    if rep.audit_problems:
        print(f"WARNING: access log tampering detected ({len(rep.audit_problems)} problem(s)); see the report",
              file=sys.stderr)
    return 0

