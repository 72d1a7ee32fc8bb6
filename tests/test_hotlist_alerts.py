"""Hits become stored, complete alerts; repeats are held back; the CLI is logged in and audited."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import make_config
from fakes import fake_reader
from test_pipeline import ScriptedSource

from alprd.app import build_daemon
from alprd.audit import AccessLog
from alprd.auth import Users
from alprd.cli import main
from alprd.hotlist import repository
from alprd.hotlist.alerts import (
    VERIFY_INSTRUCTION,
    Alerter,
    count_unpublished,
    mark_published,
    unpublished_alerts,
)
from alprd.hotlist.entries import Entry
from alprd.hotlist.hotlist import Hotlist
from alprd.records import Read
from alprd.store import Store

PASSWORD = "correct horse battery staple"


def read(plate: str, ts: str = "2026-11-28T10:00:00.000000Z", **kw) -> Read:
    return Read(plate=plate, confidence=0.91, char_confidences=(0.9,) * len(plate), camera_id="cam0",
                device_id="car-17", ts=ts, **kw)


@pytest.fixture
def alerter(store, tmp_path) -> Alerter:
    repository.replace_department_list(store, [
        Entry("ABC123", "stolen_vehicle", state="CO", priority=2, case_number="C-1", note="blue sedan"),
        Entry("A8C123", "bolo", priority=1),
        Entry("XY?99*", "felony_vehicle", priority=1, case_number="C-9"),
    ], "test", version=7)
    hot = Hotlist(store, make_config(tmp_path).hotlist)
    hot.reload()
    return Alerter(store, hot, make_config(tmp_path, hotlist={"alert_repeat_window_s": 60}))


def stored(store: Store, r: Read) -> Read:
    store.insert_read(r)
    return r


def test_a_hit_is_stored_with_a_complete_payload(alerter, store):
    sent = []
    alerter.on_alert(lambda row: sent.append(("first", row)))
    alerter.on_alert(lambda row: sent.append(("second", row)))
    r = stored(store, read("ABC123", lat=39.7, lon=-104.9, speed_kmh=40.0, crop_jpeg=b"\xff\xd8jpeg"))
    row = asyncio.run(alerter.on_read(r))
    assert sent == [("first", row), ("second", row)]  # in the order registered
    (db_row,) = store.query("select * from alerts")
    assert db_row["published_at"] is None and db_row["read_id"] == r.id
    assert (db_row["match_kind"], db_row["category"], db_row["priority"]) == ("exact", "stolen_vehicle", 2)
    payload = json.loads(db_row["payload"])
    assert payload["plate"] == "ABC123" and payload["seen_at"] == r.ts
    assert payload["match"]["kind"] == "exact" and payload["match"]["case_number"] == "C-1"
    assert payload["other_matches"][0]["kind"] == "confusable"  # exact ranks first despite priority 1
    assert payload["gps"]["lat"] == 39.7 and payload["camera_id"] == "cam0" and payload["device_id"] == "car-17"
    assert payload["crop_jpeg_b64"] and payload["hotlist_version"] == 7
    assert payload["verify"] == VERIFY_INSTRUCTION and "NCIC" in VERIFY_INSTRUCTION


def test_no_alert_for_other_plates_and_partial_plates_alert(alerter, store):
    assert alerter.record(stored(store, read("QQQ777"))) is None
    row = alerter.record(stored(store, read("XY1995")))
    assert (row["match_kind"], row["pattern"]) == ("partial", "XY?99*")


def test_one_plate_does_not_alert_again_within_the_window(alerter, store):
    assert alerter.record(stored(store, read("ABC123", ts="2026-11-28T10:00:00.000000Z")))
    assert alerter.record(stored(store, read("ABC123", ts="2026-11-28T10:00:30.000000Z"))) is None
    assert alerter.record(stored(store, read("ABC123", ts="2026-11-28T10:01:10.000000Z")))
    assert alerter.record(stored(store, read("XY1995", ts="2026-11-28T10:01:20.000000Z")))
    assert alerter.record(stored(store, read("XY2995", ts="2026-11-28T10:01:30.000000Z"))) is None  # same hotlist plate
    assert store.query("select count(*) as n from alerts")[0]["n"] == 3
    assert alerter.status() == {"alerts": 3, "suppressed_repeats": 2}


def test_a_failing_listener_does_not_lose_the_alert(alerter, store):
    alerter.on_alert(lambda row: 1 / 0)
    assert asyncio.run(alerter.on_read(stored(store, read("ABC123"))))
    assert store.query("select count(*) as n from alerts")[0]["n"] == 1


def test_alerts_wait_for_the_broker_until_marked_published(alerter, store):
    first = alerter.record(stored(store, read("ABC123", ts="2026-11-28T10:00:00.000000Z")))
    second = alerter.record(stored(store, read("XY1995", ts="2026-11-28T10:00:05.000000Z")))
    assert [a["id"] for a in unpublished_alerts(store, 10)] == [first["id"], second["id"]]  # oldest first
    assert unpublished_alerts(store, 10)[0]["payload"] == first["payload"]
    assert [a["id"] for a in unpublished_alerts(store, 10, exclude=[first["id"]])] == [second["id"]]
    assert count_unpublished(store) == 2
    mark_published(store, first["id"])
    assert [a["id"] for a in unpublished_alerts(store, 10)] == [second["id"]] and count_unpublished(store) == 1
    assert store.query("select published_at from alerts where id = ?", [first["id"]])[0]["published_at"]


def test_matching_runs_off_the_event_loop_and_keeps_read_order(alerter, store, monkeypatch):
    match = alerter.hotlist.match

    def slow_match(plate, candidates=()):
        time.sleep(0.3)  # a large list, a busy disk
        return match(plate, candidates)

    monkeypatch.setattr(alerter.hotlist, "match", slow_match)
    sent = []
    alerter.on_alert(lambda row: sent.append((row["plate"], threading.get_ident())))

    async def go() -> int:
        ticks = 0

        async def tick():  # what status writes and SIGTERM handling need: a turning loop
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        for plate in ("ABC123", "QQQ777", "XY1995"):
            await alerter.on_read(stored(store, read(plate)))
        ticker.cancel()
        return ticks

    assert asyncio.run(go()) >= 20  # 0.9 s of matching; a blocked loop would tick once
    assert [plate for plate, _ in sent] == ["ABC123", "XY1995"]
    assert {thread for _, thread in sent} == {threading.get_ident()}  # listeners run on the loop's thread


def test_daemon_matches_committed_reads_and_reports_list_age(tmp_path):
    cfg = make_config(tmp_path)
    store = Store(cfg.store.path)
    repository.replace_department_list(store, [Entry("ABC123", "stolen_vehicle")], "test", version=1)
    script = [[("ABC123", 0.9)]] * 3 + [[]] * 40 + [[("XYZ789", 0.8)]]
    daemon = build_daemon(cfg, store=store, source=ScriptedSource(script), reader=fake_reader())
    asyncio.run(daemon.run(install_signals=False))
    alerts = store.query("select a.plate, a.match_kind, r.plate as read_plate from alerts a join reads r "
                         "on r.id = a.read_id")
    assert alerts == [{"plate": "ABC123", "match_kind": "exact", "read_plate": "ABC123"}]
    status = daemon.status()["hotlist"]
    assert status["severity"] == "ok" and status["version"] == 1 and status["alerts"] == 1
    assert "hotlist_sync" not in daemon.status()  # no broker configured


def test_a_missing_or_stale_list_is_a_health_warning(store, tmp_path):
    hot = Hotlist(store, make_config(tmp_path, hotlist={"stale_after_h": 1}).hotlist)
    assert hot.status()["severity"] == "warning"
    repository.replace_department_list(store, [Entry("ABC123", "bolo")], "test")
    assert hot.status()["severity"] == "ok" and hot.status()["entries"] == 1
    store.db.conn.execute("update hotlist_meta set value = '2026-01-01T00:00:00.000000Z' where key = 'updated_at'")
    store.db.conn.commit()
    assert "stale" in hot.status()["message"]


# -- command line -----------------------------------------------------------------
@pytest.fixture
def cli(tmp_path, monkeypatch):
    config = tmp_path / "alprd.toml"
    config.write_text(f'[store]\nstate_dir = "{tmp_path}"\n')
    store = Store(tmp_path / "alprd.db")
    users = Users(store, make_config(tmp_path).policy)
    users.add("off1", "operator", PASSWORD, "2026-01-15", by=None)
    users.add("sup1", "supervisor", PASSWORD, "2026-01-15", by=None)
    monkeypatch.setenv("ALPRD_PASSWORD", PASSWORD)
    for name in ("ALPRD_TOKEN", "ALPRD_USER"):
        monkeypatch.delenv(name, raising=False)

    def run(*argv: str) -> int:
        return main(["-c", str(config), *argv])

    run.store = store
    yield run
    store.close()


def test_cli_import_add_remove_list_are_audited(cli, tmp_path, capsys):
    f = tmp_path / "ncic.csv"
    f.write_text("LIC,LIS,OCA,NAM\nABC123,CO,C-1,\nBAD!,CO,C-2,\nDEF456,CO,C-3,Jane Roe\n")
    assert cli("hotlist", "import", str(f), "--category", "stolen_vehicle", "--user", "off1") == 3  # not a supervisor
    assert cli("hotlist", "import", str(f), "--category", "stolen_vehicle", "--user", "sup1", "--version", "4") == 0
    err = capsys.readouterr().err
    assert cli("hotlist", "import", str(f), "--category", "stolen_vehicle", "--user", "sup1", "--version", "3") == 2
    assert "versions only go forward" in capsys.readouterr().err and repository.meta(cli.store).version == 4
    assert "line 3:" in err and "line 4:" in err and "personal data" in err
    assert cli("hotlist", "add", "XY?12*", "--user", "off1") == 3  # no case number or reason
    assert cli("hotlist", "add", "XY?12*", "--user", "off1", "--case", "CFS-9", "--note", "robbery") == 0
    assert cli("hotlist", "list", "--all", "--user", "off1") == 0
    out = capsys.readouterr().out
    assert "ABC123" in out and "XY?12*" in out and "2 entries" in out
    assert cli("hotlist", "remove", "XY?12*", "--user", "off1", "--case", "CFS-9") == 0
    assert [r["pattern"] for r in repository.list_entries(cli.store, officer_only=False)] == ["ABC123"]
    assert repository.meta(cli.store).version == 4
    actions = [(r.username, r.action, r.records) for r in AccessLog(cli.store).show()]
    assert ("sup1", "hotlist.import", 1) in actions
    assert ("off1", "hotlist.add", 1) in actions and ("off1", "hotlist.remove", 1) in actions
    assert ("off1", "hotlist.list", 2) in actions


def test_a_file_with_no_usable_row_changes_nothing(cli, tmp_path):
    repository.replace_department_list(cli.store, [Entry("KEEP11", "bolo")], "test")
    f = tmp_path / "bad.csv"
    f.write_text("plate,category\nXYZ,parking\n")
    assert cli("hotlist", "import", str(f), "--user", "sup1") == 2
    assert [r["pattern"] for r in repository.list_entries(cli.store, officer_only=False)] == ["KEEP11"]


def test_a_file_that_is_not_utf8_changes_nothing_and_names_the_line(cli, tmp_path, capsys):
    repository.replace_department_list(cli.store, [Entry("KEEP11", "bolo")], "test")
    f = tmp_path / "latin1.csv"
    f.write_bytes("plate,category\nABC123,bolo\nCAF\u00c9,bolo\n".encode("latin-1"))
    assert cli("hotlist", "import", str(f), "--user", "sup1") == 2
    err = capsys.readouterr().err
    assert f"{f}: line 3 is not UTF-8 text" in err and "Traceback" not in err
    assert [r["pattern"] for r in repository.list_entries(cli.store, officer_only=False)] == ["KEEP11"]


def test_cli_alert_list_and_disposition(cli, tmp_path, capsys):
    store = cli.store
    repository.replace_department_list(store, [Entry("ABC123", "stolen_vehicle")], "test")
    hot = Hotlist(store, make_config(tmp_path).hotlist)
    hot.reload()
    row = Alerter(store, hot, make_config(tmp_path)).record(stored(store, read("ABC123")))
    assert cli("alert", "list", "--open", "--user", "off1") == 0
    assert row["id"][:8] in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli("alert", "disposition", row["id"][:8], "shrug", "--user", "off1")
    assert cli("alert", "disposition", row["id"][:8], "misread", "--note", "was ABC128", "--user", "off1") == 0
    (a,) = store.query("select disposition, disposition_by, disposition_note from alerts")
    assert a == {"disposition": "misread", "disposition_by": "off1", "disposition_note": "was ABC128"}
    assert cli("alert", "disposition", "nosuch", "confirmed", "--user", "off1") == 2
    for wildcard in ("%", "_", row["id"][:4] + "%"):  # a prefix of the id, never an SQL pattern
        assert cli("alert", "disposition", wildcard, "confirmed", "--user", "off1") == 2
    assert store.query("select disposition from alerts")[0]["disposition"] == "misread"
    assert ("off1", "alert.disposition") in [(r.username, r.action) for r in AccessLog(store).show()]


def test_cli_alert_list_follow_streams_new_alerts_until_ctrl_c(cli, tmp_path):
    store = cli.store
    repository.replace_department_list(store, [Entry("ABC123", "stolen_vehicle", case_number="C-7")], "test")
    hot = Hotlist(store, make_config(tmp_path).hotlist)
    hot.reload()
    alerter = Alerter(store, hot, make_config(tmp_path, hotlist={"alert_repeat_window_s": 0}))
    old = alerter.record(stored(store, read("ABC123")))
    alprd = str(Path(sys.executable).with_name("alprd"))
    proc = subprocess.Popen([alprd, "-c", str(tmp_path / "alprd.toml"), "alert", "list", "--follow", "--user", "off1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline() + proc.stdout.readline()
        assert "1 alert(s)" in first, proc.stderr.read() if proc.poll() is not None else first
        new = alerter.record(stored(store, read("ABC123", ts="2026-11-28T10:05:00.000000Z")))
        line = proc.stdout.readline()  # printed as it is stored
        assert line.startswith("ALERT " + new["id"][:8]) and "C-7" in line and old["id"][:8] not in line
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err, err
    follows = [r for r in AccessLog(store).show(user="off1", action="alert.list") if "follow" in (r.query or "")]
    assert follows and new["id"] in follows[0].query


def test_match_kinds_that_alert_are_configurable(store, tmp_path):
    repository.replace_department_list(store, [Entry("ABC123", "stolen_vehicle")], "test")
    cfg = make_config(tmp_path, hotlist={"alert_kinds": ["exact", "confusable"]})
    hot = Hotlist(store, cfg.hotlist)
    hot.reload()
    alerter = Alerter(store, hot, cfg)
    assert alerter.record(stored(store, read("ABC1234"))) is None  # near: not wanted here
    assert alerter.record(stored(store, read("A8C123")))["match_kind"] == "confusable"


def test_sync_is_attached_only_with_the_uplink_enabled(tmp_path):
    cfg = make_config(tmp_path, uplink={"enabled": True, "host": "127.0.0.1"})
    daemon = build_daemon(cfg, source=ScriptedSource([]), reader=fake_reader())
    assert "hotlist_sync" in daemon.status() and "hotlist" in daemon.status()
    daemon.store.close()


def test_a_read_misread_at_the_top_alerts_through_its_candidate(alerter, store):
    # read as "ABC128", but the OCR's second candidate is the listed "ABC123"
    hit = alerter.record(stored(store, read("ABC128", candidates=["ABC128", "ABC123"], candidate_scores=[0.6, 0.3])))
    assert hit is not None
    assert hit["match_kind"] == "candidate" and hit["pattern"] == "ABC123"
    # a look-alike of a candidate does not count: only exact candidate hits alert
    assert alerter.record(stored(store, read("QQQ111", candidates=["QQQ111", "A8C12"]))) is None
