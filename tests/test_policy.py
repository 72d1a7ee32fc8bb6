"""Search, retention, evidence holds, export bundles, releases and the usage report,
on real SQLite files."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import re
import uuid
from datetime import UTC, datetime, timedelta

import cv2
import pytest
from conftest import BACKENDS, drop_access_log_guards, open_backend
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from alprd.audit import AccessLog
from alprd.audit.accesslog import record_hash
from alprd.config import PolicyConfig
from alprd.keys import key_id, sign
from alprd.policy import evidence, release, report
from alprd.policy.export import (
    ExportError,
    content_digest,
    member,
    sha256_file,
    verify_bundle,
    write_bundle,
)
from alprd.policy.retention import RetentionService, cutoff_for, purge
from alprd.policy.search import SearchError, SearchQuery, plate_pattern, plate_strategy, search
from alprd.records import Read, iso


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """The rules hold on a unit's SQLite and on the department's PostgreSQL alike."""
    s = open_backend(request, tmp_path)
    yield s
    s.close()

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def add_read(store, plate="ABC1234", days_ago=0.0, uploaded=True, camera="cam0", lat=None, lon=None,
             crop=b"\xff\xd8fake-jpeg", device="dev1") -> str:
    ts = iso(NOW - timedelta(days=days_ago))
    read = Read(plate, 0.9, (0.9,) * len(plate), camera, device, ts=ts, lat=lat, lon=lon, crop_jpeg=crop)
    store.insert_read(read)
    if uploaded:
        store.mark_uploaded([read.id], when=ts)
    return read.id


def add_alert(store, read_id, category="stolen_vehicle", disposition=None) -> None:
    read = store.get_read(read_id)
    with store.transaction() as db:
        db["alerts"].insert({"id": str(uuid.uuid4()), "read_id": read_id, "plate": read["plate"],
                             "category": category, "ts": read["ts"], "disposition": disposition})


# -- search ------------------------------------------------------------------------
def test_plate_patterns_are_normalised_or_refused():
    assert plate_pattern(" ab-c 12* ") == "ABC12*"
    for bad in ("AB[C]", "***", "?", "", "AB%"):
        with pytest.raises(SearchError):
            plate_pattern(bad)


@pytest.mark.parametrize(("pattern", "strategy"), [
    ("ABC1234", "exact"), ("ABC*", "prefix"), ("AB?1*", "prefix"), ("A*BC1*", "trigram"),
    ("*BC1*", "trigram"), ("?BC1234", "trigram"), ("*X7Q", "trigram"), ("A?C?2", "prefix"), ("?B?1?", "scan"),
])
def test_strategy_follows_the_known_characters(pattern, strategy):
    assert plate_strategy(pattern) == strategy


def _glob_regex(pattern: str) -> re.Pattern:
    return re.compile("^" + pattern.replace("?", ".").replace("*", ".*") + "$")


def test_every_strategy_finds_exactly_what_the_pattern_means(store):
    rnd = random.Random(3)
    alphabet = "ABCDEFGH0123"  # small alphabet: many partial matches
    plates = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(5, 7))) for _ in range(300)]
    ids = {add_read(store, p, days_ago=rnd.uniform(0, 5), crop=None): p for p in plates}
    patterns = set()
    for p in plates[:60]:
        i = rnd.randint(0, len(p) - 3)
        patterns |= {p, p[:3] + "*", f"*{p[i:i + 3]}*", "?" + p[1:], p[:2] + "?" + p[3:], f"*{p[-3:]}",
                     f"?{p[1]}?{p[3]}*"}
    seen = set()
    for pattern in sorted(patterns):
        seen.add(plate_strategy(pattern))
        found = {r["id"] for r in search(store, SearchQuery(plate=pattern, limit=10_000))}
        expected = {i for i, p in ids.items() if _glob_regex(pattern).match(p)}
        assert found == expected, pattern
    assert seen == {"exact", "prefix", "trigram", "scan"}


def test_time_camera_and_area_filters(store):
    a = add_read(store, "AAA111", days_ago=1, camera="north", lat=45.50, lon=-73.60)
    b = add_read(store, "AAA111", days_ago=3, camera="south", lat=45.70, lon=-73.60)
    c = add_read(store, "AAA111", days_ago=5, camera="north")
    ids = lambda **kw: [r["id"] for r in search(store, SearchQuery(**kw))]
    assert ids(plate="AAA111") == [a, b, c]  # newest first
    assert ids(plate="AAA*", since=iso(NOW - timedelta(days=4)), until=iso(NOW - timedelta(days=2))) == [b]
    assert ids(plate="AAA111", camera="north") == [a, c]
    assert ids(box=(45.4, -73.7, 45.6, -73.5)) == [a]
    assert ids(plate="AAA111", limit=1) == [a]


def test_search_needs_a_filter_and_a_sane_range():
    with pytest.raises(SearchError, match="needs a plate pattern"):
        SearchQuery()
    with pytest.raises(SearchError, match="time range empty"):
        SearchQuery(since="2026-02-01T00:00:00.000000Z", until="2026-01-01T00:00:00.000000Z")
    with pytest.raises(SearchError, match="--box"):
        SearchQuery(box=(46.0, -73.0, 45.0, -72.0))


def test_plate_index_follows_deletes_and_corrections(store):
    rid = add_read(store, "QWE987")
    assert search(store, SearchQuery(plate="*WE9*"))
    with store.transaction() as db:
        db.execute("UPDATE reads SET plate = 'QWE981' WHERE id = ?", [rid])
    assert [r["id"] for r in search(store, SearchQuery(plate="*E98*"))] == [rid]
    assert not search(store, SearchQuery(plate="*E987*"))
    with store.transaction() as db:
        db.execute("DELETE FROM reads WHERE id = ?", [rid])
    assert not search(store, SearchQuery(plate="*WE9*"))
    if store.dialect == "sqlite":  # PostgreSQL's trigram index is on reads itself
        assert store.query("SELECT count(*) AS n FROM reads_plate_fts")[0]["n"] == 0


# -- retention -----------------------------------------------------------------------
def test_purge_deletes_only_old_uploaded_unheld_reads(store):
    old = add_read(store, "OLD001", days_ago=31)
    recent = add_read(store, "NEW001", days_ago=29)
    not_uploaded = add_read(store, "LATE01", days_ago=40, uploaded=False)
    held = add_read(store, "HELD01", days_ago=45)
    released = add_read(store, "REL001", days_ago=45)
    add_alert(store, old, "stolen_vehicle", "confirmed")
    evidence.add_hold(store, "C-1", "robbery suspect vehicle", [held], by="op1")
    gone = evidence.add_hold(store, "C-2", "closed case", [released], by="op1")
    evidence.release_hold(store, gone)

    result = purge(store, 30, now=NOW)

    assert (result.deleted, result.held, result.not_uploaded, result.alerts_deleted) == (2, 1, 1, 1)
    assert result.oldest_not_uploaded == iso(NOW - timedelta(days=40))
    left = {r["id"] for r in store.query("SELECT id FROM reads")}
    assert left == {recent, not_uploaded, held}
    assert store.query("SELECT count(*) AS n FROM alerts")[0]["n"] == 0
    log = store.query("SELECT * FROM purge_log")
    assert [(r["deleted"], r["held"], r["not_uploaded"]) for r in log] == [(2, 1, 1)]
    assert AccessLog(store).show(action="purge")[0].records == 2
    archived = {(r["month"], r["metric"]): r["n"] for r in store.query("SELECT * FROM usage_archive")}
    assert archived == {("2026-05", "reads"): 2, ("2026-05", "hits:stolen_vehicle"): 1,
                        ("2026-05", "disposition:confirmed"): 1, ("2026-05", "unit_reads:dev1"): 2,
                        ("2026-05", "unit_hits:dev1"): 1}
    assert purge(store, 30, now=NOW).deleted == 0  # nothing left to do


def test_a_read_stamped_in_the_future_ages_from_its_upload(store):
    """A clock set ten years ahead at capture must not keep the read for ten years."""
    def future_read(plate: str, uploaded_days_ago: float) -> str:
        read = Read(plate, 0.9, (0.9,) * len(plate), "cam0", "dev1", ts=iso(NOW + timedelta(days=3650)))
        store.insert_read(read)
        store.mark_uploaded([read.id], when=iso(NOW - timedelta(days=uploaded_days_ago)))
        return read.id

    future_read("FUT001", 31)
    kept = future_read("FUT002", 29)
    unsent = Read("FUT003", 0.9, (0.9,) * 6, "cam0", "dev1", ts=iso(NOW + timedelta(days=3650)))
    store.insert_read(unsent)
    assert purge(store, 30, now=NOW).deleted == 1
    assert {r["id"] for r in store.query("SELECT id FROM reads")} == {kept, unsent.id}
    month = iso(NOW - timedelta(days=31))[:7]
    assert store.query("SELECT month, n FROM usage_archive WHERE metric = 'reads'") == [{"month": month, "n": 1}]


def test_purge_works_in_batches(store, monkeypatch):
    monkeypatch.setattr("alprd.policy.retention.BATCH", 7)
    for i in range(30):
        add_read(store, f"B{i:05d}", days_ago=35, crop=None)
    assert purge(store, 30, now=NOW).deleted == 30
    assert store.count_reads() == 0


def test_purge_stops_between_batches_when_asked(store, monkeypatch):
    monkeypatch.setattr("alprd.policy.retention.BATCH", 5)
    for i in range(20):
        add_read(store, f"S{i:05d}", days_ago=35, crop=None)
    assert purge(store, 30, now=NOW, stop=lambda: True).deleted == 5
    assert store.query("SELECT deleted FROM purge_log")[0]["deleted"] == 5


def test_cutoff_is_retention_days_before_now():
    assert cutoff_for(NOW, 30) == "2026-05-31T12:00:00.000000Z"


def test_retention_service_runs_at_start_reports_and_stops_on_request(store):
    add_read(store, "OLD002", days_ago=400)
    service = RetentionService(store, PolicyConfig(purge_interval_h=24))

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        for _ in range(200):
            if service.last_at:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 2)

    asyncio.run(go())
    assert store.count_reads() == 0
    status = service.status()
    assert status["deleted"] == 1 and status["retention_days"] == 30 and status["error"] is None


# -- evidence and export ---------------------------------------------------------------
def test_hold_needs_existing_reads_and_is_kept_on_file(store):
    rid = add_read(store)
    with pytest.raises(evidence.EvidenceError, match="no such read"):
        evidence.add_hold(store, "C-9", "armed robbery getaway car", [rid, "nope"], by="op1")
    assert evidence.list_holds(store) == []
    hid = evidence.add_hold(store, "C-9", "armed robbery getaway car", [rid, rid], by="op1")
    assert [r["id"] for r in evidence.held_reads(store, "C-9")] == [rid]
    evidence.release_hold(store, hid)
    with pytest.raises(evidence.EvidenceError, match="already released"):
        evidence.release_hold(store, hid)
    assert evidence.held_reads(store, "C-9") == []
    assert evidence.list_holds(store, "C-9")[0].reads == 1
    assert evidence.list_holds(store, active_only=True) == []


KEY = Ed25519PrivateKey.generate()


def _bundle(store, tmp_path):
    ids = [add_read(store, "EVI001", days_ago=2), add_read(store, "EVI002", days_ago=1, crop=None)]
    evidence.add_hold(store, "C-5", "hit and run witness plate", ids, by="op1")
    log = AccessLog(store)

    def record(query, count):
        return log.get(log.record("op1", "export", query, case_number="C-5", records=count)).as_dict()

    dest = tmp_path / "usb"
    manifest = write_bundle(dest, evidence.held_reads(store, "C-5"), {"case": "C-5"}, record, KEY)
    return dest, manifest


def test_export_bundle_has_reads_crops_manifest_audit_and_signature(store, tmp_path):
    dest, manifest = _bundle(store, tmp_path)
    paths = {f["path"] for f in manifest["files"]}
    assert {"reads.json", "reads.csv", "audit.json"} <= paths and "manifest.sig" not in paths
    assert sum(p.startswith("crops/") for p in paths) == 1
    data = json.loads((dest / "reads.json").read_text())
    assert [r["plate"] for r in data["reads"]] == ["EVI001", "EVI002"]
    assert "crop_jpeg" not in data["reads"][0]
    rows = list(csv.DictReader(io.StringIO((dest / "reads.csv").read_text())))
    assert [r["plate"] for r in rows] == ["EVI001", "EVI002"]
    audit = json.loads((dest / "audit.json").read_text())
    assert audit["action"] == "export" and audit["records"] == 2 and audit["case_number"] == "C-5"
    assert manifest["audit"] == audit and manifest["signed_by"]["key_id"] == key_id(KEY.public_key())
    check = verify_bundle(dest, KEY.public_key())
    assert check.problems == [] and check.unchecked == [] and check.audit == audit
    assert any(line.startswith("signature of manifest.json: valid (Ed25519") for line in check.checked)
    with pytest.raises(ExportError, match="not empty"):
        write_bundle(dest, [], {}, lambda q, n: {}, KEY)


def test_bundle_files_are_not_world_readable_whatever_the_umask(store, tmp_path):
    old_umask = os.umask(0o022)
    try:
        dest, _ = _bundle(store, tmp_path)
    finally:
        os.umask(old_umask)
    assert {p.stat().st_mode & 0o777 for p in dest.rglob("*") if p.is_file()} == {0o640}
    assert {dest.stat().st_mode & 0o777, (dest / "crops").stat().st_mode & 0o777} == {0o750}


def test_verify_without_the_public_key_says_what_it_could_not_check(store, tmp_path):
    dest, _ = _bundle(store, tmp_path)
    check = verify_bundle(dest)
    assert check.problems == []
    assert check.unchecked == [("signature: NOT CHECKED, no public key given (--public-key FILE: the unit's key, "
                               "from the department); without it a consistent edit of the whole bundle passes")]


def forge_consistently(dest) -> None:
    """Edit a read, then re-hash everything a forger can: files, audit record, manifest."""
    data = json.loads((dest / "reads.json").read_text())
    data["reads"][0]["plate"] = "FAKE01"
    (dest / "reads.json").write_text(json.dumps(data))
    manifest = json.loads((dest / "manifest.json").read_text())
    files = {f["path"]: sha256_file(dest / f["path"]) for f in manifest["files"] if f["path"] != "audit.json"}
    audit = json.loads((dest / "audit.json").read_text())
    audit["query"] = json.dumps({**json.loads(audit["query"]), "content_sha256": content_digest(files)})
    audit["hash"] = record_hash(audit["prev_hash"], audit)
    (dest / "audit.json").write_text(json.dumps(audit))
    files["audit.json"] = sha256_file(dest / "audit.json")
    manifest.update(audit=audit, files=[{"path": p, "sha256": h} for p, h in sorted(files.items())])
    (dest / "manifest.json").write_text(json.dumps(manifest))


def test_a_consistent_forgery_is_caught_only_by_the_signature(store, tmp_path):
    dest, _ = _bundle(store, tmp_path)
    forge_consistently(dest)
    assert verify_bundle(dest).problems == []  # away from the unit, without its key: nothing shows
    problems = verify_bundle(dest, KEY.public_key()).problems
    assert problems == [(f"manifest.sig: not a valid signature of manifest.json by key {key_id(KEY.public_key())}: "
                        "the manifest was altered, or another unit signed it")]


def _edit_json(path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def relist_csv(dest) -> None:
    (dest / "reads.csv").write_text("id,plate\nx,FAKE\n")
    manifest = json.loads((dest / "manifest.json").read_text())
    for f in manifest["files"]:
        if f["path"] == "reads.csv":
            f["sha256"] = sha256_file(dest / "reads.csv")
    (dest / "manifest.json").write_text(json.dumps(manifest))


def _crop(dest):
    return next((dest / "crops").iterdir())


TAMPERING = {
    "a read's row": (lambda d: (d / "reads.csv").write_text("id,plate\nx,FAKE\n"), "reads.csv: changed"),
    "an image": (lambda d: _crop(d).write_bytes(b"\xff\xd8other"), ": changed (SHA-256 differs"),
    "a deleted file": (lambda d: (d / "reads.json").unlink(), "reads.json: missing"),
    "the manifest": (lambda d: _edit_json(d / "manifest.json", reads=5), "manifest.sig: not a valid signature"),
    "the audit record": (lambda d: _edit_json(d / "audit.json", records=0),
                         "audit.json: its hash does not match its fields"),
    "the signature": (lambda d: (d / "manifest.sig").write_text(sign(Ed25519PrivateKey.generate(), b"x")),
                      "manifest.sig: not a valid signature"),
    "no signature": (lambda d: (d / "manifest.sig").unlink(), "manifest.sig: missing or unreadable"),
    "a re-listed manifest": (relist_csv, "manifest lists other files than the export's audit record vouches for"),
    "an added file": (lambda d: (d / "note.txt").write_text("added later"),
                      "note.txt: not in the manifest (added after export)"),
}


@pytest.mark.parametrize("part", TAMPERING)
def test_tampering_with_any_part_of_a_bundle_is_caught(store, tmp_path, part):
    dest, _ = _bundle(store, tmp_path)
    tamper, expected = TAMPERING[part]
    tamper(dest)
    problems = verify_bundle(dest, KEY.public_key()).problems
    assert any(expected in p for p in problems), problems


def test_verify_refuses_manifest_paths_outside_the_bundle(store, tmp_path):
    dest, manifest = _bundle(store, tmp_path)
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the bundle")
    (dest / "link.txt").symlink_to(outside)
    digest = sha256_file(outside)  # listed with the right hash: refused all the same, never read
    manifest["files"] += [{"path": p, "sha256": digest} for p in (str(outside), "../secret.txt", "link.txt")]
    (dest / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_bundle(dest).problems
    for path in (str(outside), "../secret.txt", "link.txt"):
        assert f"{path!r}: refused: the manifest names a file outside the bundle" in " ".join(problems)
    assert member(dest, "crops/x.jpg") == dest / "crops" / "x.jpg"
    assert member(dest, "C:/Windows") is None and member(dest, "crops\\..\\..\\x") is None


# -- releases ---------------------------------------------------------------------
def test_release_needs_an_approval_by_someone_else(store):
    with pytest.raises(release.ReleaseError, match="--purpose"):
        release.file_request(store, "State Police", "Tpr 4411", " ", "C-5", by="op1")
    rid = release.file_request(store, "State Police", "Tpr 4411", "robbery series", "C-5", by="sup1")
    with pytest.raises(release.ReleaseError, match="is pending"):
        release.require_approved(store, rid)
    with pytest.raises(release.ReleaseError, match="another supervisor"):
        release.decide(store, rid, True, "fine", by="sup1")
    req = release.decide(store, rid, True, "court order on file", by="sup2")
    assert (req.status, req.decided_by) == ("approved", "sup2")
    assert release.require_approved(store, rid).case_number == "C-5"
    with pytest.raises(release.ReleaseError, match="already approved"):
        release.decide(store, rid, False, "changed my mind", by="sup3")
    denied = release.file_request(store, "County", "Det 12", "fishing", "C-6", by="op1")
    release.decide(store, denied, False, "no case link", by="sup2")
    with pytest.raises(release.ReleaseError, match="is denied"):
        release.require_approved(store, denied)
    assert [r.status for r in release.list_requests(store)] == ["approved", "denied"]


# -- report ------------------------------------------------------------------------
def test_months_between_covers_touched_months():
    assert report.months_between("2026-01-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z") == [
        f"2026-{m:02d}" for m in range(1, 13)]
    assert report.months_between("2026-01-15T00:00:00.000000Z", "2026-03-02T00:00:00.000000Z") == [
        "2026-01", "2026-02", "2026-03"]


def test_report_counts_live_and_purged_data(store, tmp_path):
    old = add_read(store, "OLD100", days_ago=45)  # 2026-05, will be purged
    add_alert(store, old, "stolen_vehicle", "confirmed")
    for plate in ("NEW100", "NEW200"):
        rid = add_read(store, plate, days_ago=1)  # 2026-06
    add_alert(store, rid, "amber_alert", "misread")
    add_alert(store, rid, "amber_alert")
    purge(store, 30, now=NOW)
    log = AccessLog(store)
    log.record("op1", "search", {"plate": "NEW*"}, case_number="C-7", records=2)
    log.record("op1", "search", {"plate": "NEW1*"}, case_number="C-7", records=1)
    log.record("op2", "search", {"plate": "X*"}, reason="suspicious vehicle at school", records=0)
    release.file_request(store, "State Police", "Tpr 4411", "robbery series", "C-7", by="op1")

    rep = report.gather(store, "2026-01-01T00:00:00.000000Z", iso(datetime.now(UTC) + timedelta(days=1)))
    assert rep.reads_by_month["2026-05"] == 1 and rep.reads_by_month["2026-06"] == 2
    assert rep.hits_by_month["2026-05"] == 1 and rep.hits_by_month["2026-06"] == 2
    assert rep.hits_by_category == {"stolen_vehicle": 1, "amber_alert": 2}
    assert rep.dispositions == {"confirmed": 1, "misread": 1, "pending": 1}
    assert ("op1", "case C-7", 2, 3) in rep.searches
    assert ("op2", "suspicious vehicle at school", 1, 0) in rep.searches
    assert rep.audit_problems == [] and len(rep.releases) == 1 and len(rep.purges) == 1

    md, table = report.render_markdown(rep), report.render_csv(rep)
    assert "- Plate reads: 3" in md and "hash chain intact" in md
    assert "systems 2 (confirmed 1, misread 1), not yet dispositioned 1" in md
    assert "| 2026-05 | 1 | 1 |" in md and "| op2 | suspicious vehicle at school | 1 | 0 |" in md
    rows = list(csv.reader(io.StringIO(table)))
    assert ["reads_by_month", "2026-06", "2"] in rows and ["audit", "chain_intact", "1"] in rows

    paths = report.write_report(rep, tmp_path / "rep")
    chart = cv2.imread(str(paths[2]))
    assert chart is not None and chart.shape == (520, 960, 3)
    assert (chart < 250).any(axis=2).mean() > 0.01  # bars and labels drawn


def test_the_report_breaks_the_fleet_down_by_unit_purged_months_included(store):
    add_alert(store, add_read(store, "OLD100", days_ago=45, device="car1"), "stolen_vehicle")  # purged below
    add_read(store, "NEW100", days_ago=1, device="car1")
    add_alert(store, add_read(store, "NEW200", days_ago=1, device="car2"), "amber_alert")
    assert purge(store, 30, now=NOW).deleted == 1
    rep = report.gather(store, "2026-01-01T00:00:00.000000Z", iso(datetime.now(UTC) + timedelta(days=1)))
    assert rep.reads_by_unit == {"car1": 2, "car2": 1} and rep.hits_by_unit == {"car1": 1, "car2": 1}
    assert "| car1 | 2 | 1 |" in report.render_markdown(rep)
    assert ["reads_by_unit", "car2", "1"] in list(csv.reader(io.StringIO(report.render_csv(rep))))


def test_report_flags_a_tampered_log(store):
    log = AccessLog(store)
    for i in range(3):
        log.record("op1", "search", {"i": i}, case_number="C-1")
    drop_access_log_guards(store)
    store.db.execute("DELETE FROM access_log WHERE seq = 2")
    rep = report.gather(store, "2026-01-01T00:00:00.000000Z", "2100-01-01T00:00:00.000000Z")
    assert rep.audit_problems and "TAMPERING DETECTED" in report.render_markdown(rep)


def test_daemon_purges_on_start(tmp_path):
    from conftest import make_config
    from fakes import fake_reader
    from test_pipeline import ScriptedSource

    from alprd.app import build_daemon
    from alprd.store import Store

    cfg = make_config(tmp_path)
    store = Store(cfg.store.path)
    add_read(store, "OLD003", days_ago=400)
    daemon = build_daemon(cfg, store=store, source=ScriptedSource([[]] * 3), reader=fake_reader())
    asyncio.run(daemon.run(install_signals=False))
    assert store.count_reads() == 0
    assert store.query("SELECT deleted FROM purge_log")[0]["deleted"] == 1
    assert daemon.status()["retention"]["deleted"] == 1


def test_search_finds_a_read_by_one_of_its_ocr_candidates(store):
    misread = Read("ABC1Z34", 0.7, [0.7] * 7, "cam0", "dev1", candidates=["ABC1Z34", "ABC1234"],
                   candidate_scores=[0.6, 0.35])
    store.insert_read(misread)
    add_read(store, "XYZ9999")
    for pattern in ("ABC1234", "ABC12*", "*C1234"):
        assert [r["id"] for r in search(store, SearchQuery(plate=pattern))] == [misread.id], pattern
    assert [r["plate"] for r in search(store, SearchQuery(plate="ABC1Z34"))] == ["ABC1Z34"]
    with store.transaction() as db:  # purged with its read
        db.execute("DELETE FROM reads WHERE id = ?", [misread.id])
    assert store.query("select count(*) n from read_candidates")[0]["n"] == 0
