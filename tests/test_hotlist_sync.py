"""Signed hotlist sync: only verified, newer lists are applied; through a real broker."""

from __future__ import annotations

import asyncio
import json
import re
import time

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, make_config
from structlog.testing import capture_logs
from test_hotlist_alerts import PASSWORD, read, stored

from alprd.audit import AccessLog
from alprd.auth import Users
from alprd.cli import main
from alprd.hotlist import repository
from alprd.hotlist.alerts import Alerter
from alprd.hotlist.department import Plan, PublishRefused, Retained, plan_publish, share_bolos
from alprd.hotlist.entries import Entry
from alprd.hotlist.hotlist import Hotlist
from alprd.hotlist.sync import (
    HotlistSync,
    SyncRefused,
    apply_message,
    delta_body,
    sign,
    snapshot_body,
    topics,
)
from alprd.store import Store

KEY = "k" * 32
LIST_ID = "d" * 32
LIST = [Entry("ABC123", "stolen_vehicle", case_number="C-1"), Entry("DEF456", "wanted_person")]


@pytest.fixture
def cfg(tmp_path):
    return make_config(tmp_path, hotlist={"sync_key": KEY}).hotlist


def patterns(store) -> set[str]:
    return {r["pattern"] for r in repository.list_entries(store, officer_only=False)}


def test_signed_newer_snapshot_and_delta_apply(store, cfg):
    out = apply_message(store, cfg, sign(snapshot_body(LIST, 5, LIST_ID), KEY), "test")
    assert (out.kind, out.loaded) == ("snapshot", 2)
    out = apply_message(store, cfg, sign(delta_body([Entry("NEW777", "bolo")], ["DEF456"], 6, 5, LIST_ID), KEY), "test")
    assert (out.loaded, out.removed) == (1, 1)
    assert patterns(store) == {"ABC123", "NEW777"}
    assert repository.meta(store).version == 6


@pytest.mark.parametrize("payload, reason", [
    (sign(snapshot_body(LIST, 9, LIST_ID), "w" * 32), "signature does not verify"),
    (sign(snapshot_body(LIST, 9, LIST_ID), KEY).replace(b"ABC123", b"ABC124"), "signature does not verify"),
    (snapshot_body(LIST, 9, LIST_ID), "signature does not verify"),
    (sign(snapshot_body(LIST, 3, LIST_ID), KEY), "not newer"),
    (sign(snapshot_body(LIST, 5, LIST_ID), KEY), "not newer"),
    (sign(delta_body(LIST, [], 9, 4, LIST_ID), KEY), "waiting for a snapshot"),
    (sign(b'{"format": "other"}', KEY), "not an alprd-hotlist/1"),
])
def test_bad_signature_old_version_or_gap_is_refused_and_list_stays(store, cfg, payload, reason):
    apply_message(store, cfg, sign(snapshot_body([Entry("KEEP11", "bolo")], 5, LIST_ID), KEY), "test")
    with pytest.raises(SyncRefused, match=reason):
        apply_message(store, cfg, payload, "test")
    assert patterns(store) == {"KEEP11"} and repository.meta(store).version == 5


def test_without_a_key_nothing_is_accepted(store, tmp_path):
    with pytest.raises(SyncRefused, match="no \\[hotlist\\] sync_key"):
        apply_message(store, make_config(tmp_path).hotlist, sign(snapshot_body(LIST, 1, LIST_ID), KEY), "test")


def test_bad_rows_in_a_verified_list_are_skipped(store, cfg):
    body = snapshot_body(LIST, 2, LIST_ID).replace(b'"wanted_person"', b'"parking"')
    out = apply_message(store, cfg, sign(body, KEY), "test")
    assert out.loaded == 1 and "line 3" in out.rejected[0] and "denied" in out.rejected[0]


async def _until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_sync_through_the_broker(broker, store, tmp_path):
    config = make_config(tmp_path, hotlist={"sync_key": KEY},
                         uplink={"enabled": True, "host": "127.0.0.1", "port": broker.port})
    hot = Hotlist(store, config.hotlist)
    sync = HotlistSync(config, store, on_change=hot.reload)
    forged = config.model_copy(update={"hotlist": config.hotlist.model_copy(update={"sync_key": "x" * 32})})

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        await _until(lambda: sync.connected)
        await asyncio.to_thread(send, config, snapshot_body(LIST, 3, LIST_ID), False)
        await _until(lambda: sync.accepted == 1)
        assert [m.entry["pattern"] for m in hot.match("ABC123")] == ["ABC123"]
        await asyncio.to_thread(send, forged, snapshot_body([Entry("EVIL11", "bolo")], 99, LIST_ID), False)
        await asyncio.to_thread(send, config, delta_body([Entry("OLD111", "bolo")], [], 2, 1, LIST_ID), True)
        await _until(lambda: sync.ignored == 2)  # forged, and older than the list in use
        await asyncio.to_thread(send, config, delta_body([Entry("NEW777", "bolo")], ["ABC123"], 4, 3, LIST_ID), True)
        await _until(lambda: sync.accepted == 2)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert patterns(store) == {"DEF456", "NEW777"}
    assert hot.match("ABC123") == [] and hot.match("NEW777")
    actions = [r.action for r in AccessLog(store).show()]
    assert actions == ["hotlist.sync"] * 2  # junk leaves no access-log record


def test_junk_on_the_sync_topics_is_dropped_cheaply_and_real_deltas_still_apply(store, tmp_path):
    # Mosquitto drops what is queued for a client past 1,000 messages: the test is of the
    # unit's handling, so the broker keeps all of them.
    broker = Broker(tmp_path, extra_conf="allow_anonymous true\nmax_queued_messages 0")
    broker.start()
    config = make_config(tmp_path, hotlist={"sync_key": KEY},
                         uplink={"enabled": True, "host": "127.0.0.1", "port": broker.port})
    apply_message(store, config.hotlist, sign(snapshot_body(LIST, 5, LIST_ID), KEY), "test")
    old = sign(snapshot_body([Entry("OLD111", "bolo")], 3, LIST_ID), KEY)  # an old signed list, replayed
    junk = [b"\xff" * 100, b"no signature", sign(b"{}", "x" * 32), old]
    snapshot_topic, delta_topic = topics(config.uplink)
    sync = HotlistSync(config, store)
    n = 3000

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        await _until(lambda: sync.connected)
        await asyncio.to_thread(_flood, broker.port, [(delta_topic, junk[i % 4]) for i in range(n)]
                                + [(snapshot_topic, old), (delta_topic, sign(delta_body(
                                    [Entry("NEW777", "bolo")], ["ABC123"], 6, 5, LIST_ID), KEY))])
        await _until(lambda: sync.accepted == 1, timeout=20)
        stop.set()
        await asyncio.wait_for(task, 10)

    with capture_logs() as logs:
        t0 = time.monotonic()
        try:
            asyncio.run(scenario())
        finally:
            broker.stop()
    assert time.monotonic() - t0 < 30, sync.status()
    assert patterns(store) == {"DEF456", "NEW777"} and repository.meta(store).version == 6
    assert sync.status()["ignored"] == n + 1 and sync.refused == 0 and sync.dropped == 0
    assert [r.action for r in AccessLog(store).show()] == ["hotlist.sync"]
    assert sum(e["event"] == "hotlist_sync_ignored" for e in logs) == 1  # at most one a minute


def send(config, body: bytes, delta: bool) -> None:
    """Publish one list signed with the config's key, as any publisher could (old or forged ones too)."""
    snapshot_topic, delta_topic = topics(config.uplink)
    _flood(config.uplink.port, [(delta_topic if delta else snapshot_topic, sign(body, config.hotlist.sync_key))])


def _flood(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish in order at QoS 1 (the retained old snapshot as an attacker would re-publish it)."""
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect("127.0.0.1", port)
    sender.loop_start()
    try:
        infos = [sender.publish(t, p, qos=1, retain=t.endswith("snapshot")) for t, p in messages]
        infos[-1].wait_for_publish(20)
    finally:
        sender.disconnect()
        sender.loop_stop()


def test_a_fresh_unit_installs_the_retained_snapshot_a_newer_unit_refuses_it(broker, store, tmp_path):
    """Versions only go forward; a unit with no list has nothing to compare with (documented)."""
    config = make_config(tmp_path, hotlist={"sync_key": KEY},
                         uplink={"enabled": True, "host": "127.0.0.1", "port": broker.port})
    send(config, snapshot_body([Entry("OLD111", "bolo")], 3, LIST_ID), False)  # retained at the broker
    newer = tmp_path / "newer"
    newer.mkdir()
    newer_store = Store(newer / "alprd.db")
    apply_message(newer_store, config.hotlist, sign(snapshot_body(LIST, 5, LIST_ID), KEY), "test")
    newer_config = config.model_copy(update={"device": config.device.model_copy(update={"id": "car2"})})
    units = [HotlistSync(config, store), HotlistSync(newer_config, newer_store)]

    async def scenario():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(u.run(stop)) for u in units]
        await _until(lambda: units[0].accepted == 1 and units[1].ignored == 1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert patterns(store) == {"OLD111"} and repository.meta(store).version == 3
    assert patterns(newer_store) == {"ABC123", "DEF456"} and repository.meta(newer_store).version == 5
    [ignored] = [e for e in logs if e["event"] == "hotlist_sync_ignored"]
    assert "version 3 is not newer than the list in use (version 5)" in ignored["reason"]
    newer_store.close()


def test_a_fresh_unit_refuses_an_old_snapshot_re_published(store, tmp_path):
    """A unit with no list cannot compare versions; the snapshot's signed issue time tells it is old."""
    cfg = make_config(tmp_path, hotlist={"sync_key": KEY, "stale_after_h": 24}).hotlist
    header, *rows = snapshot_body(LIST, 4, LIST_ID).split(b"\n")
    doc = json.loads(header)
    doc["issued_at"] = "2026-01-01T00:00:00.000000Z"  # months old, signed by the department then
    old = sign(b"\n".join([json.dumps(doc).encode(), *rows]), KEY)
    with pytest.raises(SyncRefused, match="issued .* h ago"):
        apply_message(store, cfg, old, "test")
    assert repository.meta(store).version <= 0 and patterns(store) == set()
    apply_message(store, cfg, sign(snapshot_body(LIST, 5, LIST_ID), KEY), "test")  # the next publish installs
    assert repository.meta(store).version == 5


# -- the department's list: one source, versions only forward (issue 22) ----------------
class Department:
    """The department's database and its `alprd hotlist` commands, against the test broker."""

    def __init__(self, tmp_path, port: int, name: str = "dept"):
        self.port = port
        self.dir = tmp_path / name
        self.dir.mkdir()
        self.toml = self.dir / "alprd.toml"
        self.toml.write_text(f'[hotlist]\nsync_key = "{KEY}"\n[uplink]\nhost = "127.0.0.1"\nport = {port}\n'
                             f'[store]\nstate_dir = "{self.dir}"\n')
        self.store = Store(self.dir / "alprd.db")
        Users(self.store, make_config(self.dir).policy).add("sup1", "supervisor", PASSWORD, "2026-01-15", by=None)

    def __call__(self, *argv: str) -> int:
        return main(["-c", str(self.toml), *argv, *(("--user", "sup1") if argv[1] != "status" else ())])

    def import_text(self, text: str, name: str = "extract.txt") -> int:
        (self.dir / name).write_text(text)
        return self("hotlist", "import", str(self.dir / name), "--format", "ncic")


def extract(*rows: str) -> str:
    return "FILE|LIC|LIS|NIC|ORI|DTE|EXP\n" + "".join(f"{r}|CO0010000|20261101|\n" for r in rows)


@pytest.fixture
def department(broker, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPRD_PASSWORD", PASSWORD)
    for name in ("ALPRD_TOKEN", "ALPRD_USER"):
        monkeypatch.delenv(name, raising=False)
    dept = Department(tmp_path, broker.port)
    yield dept
    dept.store.close()


def unit_sync(tmp_path, port: int, store) -> HotlistSync:
    config = make_config(tmp_path, hotlist={"sync_key": KEY},
                         uplink={"enabled": True, "host": "127.0.0.1", "port": port})
    return HotlistSync(config, store)


def run_unit(sync: HotlistSync, until, during=None) -> None:
    """Run a unit's sync until ``until()`` holds; ``during()`` (blocking, e.g. a publish) runs once it is online."""
    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        await _until(lambda: sync.connected)
        if during:
            await asyncio.to_thread(during)
        await _until(until)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_an_older_publish_is_refused_and_the_retained_snapshot_stays(department, broker, store, tmp_path, capsys):
    """Issue 22 (1): an older publish replaced the broker's retained snapshot."""
    assert department.import_text(extract("V|ABC123|CO|V1")) == 0
    assert department.import_text(extract("V|ABC123|CO|V1", "LP|DEF456|CO|L2")) == 0
    t0 = time.monotonic()
    assert department("hotlist", "publish") == 0
    assert time.monotonic() - t0 < 5  # an empty broker says so at once (a barrier subscription)
    assert "version 2 published" in capsys.readouterr().out
    laptop = Department(tmp_path, broker.port, "laptop")  # an older copy of the list, elsewhere
    assert laptop.import_text(extract("V|OLD111|CO|V9")) == 0
    assert laptop("hotlist", "publish") == 1
    err = capsys.readouterr().err
    assert "list is version 1, not newer than the broker's retained snapshot (version 2, of another list)" in err
    assert "--version 3" in err and "Traceback" not in err
    assert laptop.import_text(extract("V|OLD111|CO|V9", "V|OLD222|CO|V8"), "2.txt") == 0
    assert laptop.import_text(extract("V|OLD111|CO|V9"), "3.txt") == 0  # version 3 now, but another list
    assert laptop("hotlist", "publish") == 1
    err = capsys.readouterr().err
    assert "retained snapshot (version 2) is another list" in err and "--take-over" in err
    laptop.store.close()
    assert department("hotlist", "publish") == 0  # the broker still holds the department's version 2
    assert "version 2 is the broker's retained snapshot already" in capsys.readouterr().out
    sync = unit_sync(tmp_path, broker.port, store)
    run_unit(sync, lambda: sync.accepted == 1)
    assert patterns(store) == {"ABC123", "DEF456"} and repository.meta(store).version == 2
    actions = [r.action for r in AccessLog(department.store).show()]
    assert actions.count("hotlist.publish") == 2 and actions.count("hotlist.import") == 2


def test_a_changed_import_takes_the_next_version_and_reaches_the_units_as_a_delta(department, broker, store,
                                                                                 tmp_path, capsys):
    """Issue 22 (2): a local import kept the old version number while changing the list."""
    assert department.import_text(extract("V|ABC123|CO|V1", "LP|DEF456|CO|L2")) == 0
    assert department("hotlist", "publish") == 0
    sync = unit_sync(tmp_path, broker.port, store)
    run_unit(sync, lambda: sync.accepted == 1)
    assert repository.meta(store).version == 1
    capsys.readouterr()
    assert department.import_text(extract("V|ABC123|CO|V1", "LP|DEF456|CO|L2")) == 0
    assert "unchanged, version stays 1: 0 added, 0 removed, 2 unchanged" in capsys.readouterr().out
    assert department.import_text(extract("V|ABC123|CO|V1", "F|NEW777|CO|V3")) == 0
    assert "version 2 (was 1): 1 added, 1 removed, 1 unchanged" in capsys.readouterr().out
    run_unit(sync, lambda: sync.accepted == 2 and sync.ignored >= 1, during=lambda: department("hotlist", "publish"))
    assert "delta from version 1 (1 entries) and snapshot (2 entries)" in capsys.readouterr().out
    assert patterns(store) == {"ABC123", "NEW777"} and repository.meta(store).version == 2
    applied = [json.loads(r.query)["kind"] for r in AccessLog(store).show() if r.action == "hotlist.sync"]
    assert applied == ["snapshot", "delta"]  # then the new snapshot: not newer, screened out


def test_a_delta_made_from_another_list_is_refused_and_the_next_snapshot_applies(department, broker, store, tmp_path):
    """Issue 22 (3): a delta landed on a different list (same version numbers, another publisher)."""
    assert department.import_text(extract("V|ABC123|CO|V1")) == 0
    assert department("hotlist", "publish") == 0
    sync = unit_sync(tmp_path, broker.port, store)
    run_unit(sync, lambda: sync.accepted == 1)
    other = delta_body([Entry("EVIL11", "bolo")], ["ABC123"], 2, 1, "another-list")
    with capture_logs() as logs:
        run_unit(sync, lambda: sync.refused == 1, during=lambda: send(sync.config, other, True))
    [refused] = [e for e in logs if e["event"] == "hotlist_sync_refused"]
    assert "made from list another-list, but the list in use is list" in refused["reason"]
    assert patterns(store) == {"ABC123"} and repository.meta(store).version == 1
    assert department.import_text(extract("V|ABC123|CO|V1", "V|NEW777|CO|V2")) == 0
    run_unit(sync, lambda: sync.accepted == 2, during=lambda: department("hotlist", "publish"))
    assert patterns(store) == {"ABC123", "NEW777"} and repository.meta(store).version == 2


def test_a_shared_bolo_reaches_the_fleet_and_alerts(department, broker, store, tmp_path, capsys):
    """A BOLO an officer entered in one car: the server shares it, publishes, another unit alerts on it."""
    assert department.import_text(extract("V|ABC123|CO|V1")) == 0
    bolo = {"id": "b-17", "plate": "bol 042", "category": "bolo", "case_number": "CFS-77", "note": "grey van",
            "priority": 2, "expires_at": "2999-01-01T00:00:00Z", "entered_by": "car12/off1",
            "entered_at": "2026-12-01T10:00:00Z"}
    (department.dir / "bolos.json").write_text(json.dumps({"schema": "alprd.bolos/1", "bolos": [bolo]}))
    assert department("hotlist", "share-bolo", str(department.dir / "bolos.json")) == 0
    assert "BOLOs: version 2 (was 1): 1 added" in capsys.readouterr().out
    assert department.import_text(extract("V|ABC123|CO|V1", "V|NEW777|CO|V2")) == 0  # the next extract keeps it
    assert department("hotlist", "publish") == 0
    sync = unit_sync(tmp_path, broker.port, store)
    run_unit(sync, lambda: sync.accepted == 1)
    assert patterns(store) == {"ABC123", "NEW777", "BOL042"}
    config = make_config(tmp_path)
    hot = Hotlist(store, config.hotlist)
    hot.reload()
    alert = Alerter(store, hot, config).record(stored(store, read("BOL042")))
    assert alert is not None and (alert["category"], alert["priority"], alert["case_number"], alert["note"]) == (
        "bolo", 2, "CFS-77", "grey van")
    assert department("hotlist", "withdraw-bolo", "b-17") == 0
    run_unit(sync, lambda: sync.accepted == 2, during=lambda: department("hotlist", "publish"))
    assert patterns(store) == {"ABC123", "NEW777"}


def _meta(version: int, list_id: str = "ours", changes_since: int = 0) -> repository.ListMeta:
    return repository.ListMeta(version, 0, None, "", 0, list_id, changes_since)


@pytest.mark.parametrize("ours, retained, take_over, plan_or_problem", [
    (_meta(3), None, False, Plan(None)),  # a fresh broker: the snapshot alone
    (_meta(3), Retained(2, "ours"), False, Plan(2)),
    (_meta(3, changes_since=2), Retained(1, "ours"), False, Plan(None)),  # the change log starts after 1
    (_meta(3), Retained(3, "ours"), False, Plan(None, up_to_date=True)),
    (_meta(3), Retained(4, "ours"), False, "version 3, not newer than the broker's retained snapshot (version 4)"),
    (_meta(3), Retained(3, "theirs"), True, "(version 3, of another list)"),
    (_meta(3), Retained(2, "theirs"), False, "is another list (theirs) than this database's (ours)"),
    (_meta(3), Retained(2, "theirs"), True, Plan(None)),
    (_meta(0, ""), None, False, "no department list here"),
])
def test_what_a_publish_sends_over_the_retained_snapshot(ours, retained, take_over, plan_or_problem):
    if isinstance(plan_or_problem, Plan):
        assert plan_publish(ours, retained, take_over) == plan_or_problem
    else:
        with pytest.raises(PublishRefused, match=re.escape(plan_or_problem)):
            plan_publish(ours, retained, take_over)


BOLO = {"id": "b-1", "plate": "BOL042", "category": "bolo", "case_number": "CFS-1", "note": "grey van",
        "priority": 2, "expires_at": "2999-01-01T00:00:00Z", "entered_by": "car12/off1",
        "entered_at": "2026-12-01T10:00:00Z"}


def test_bolos_become_department_entries_through_the_policy_checks(store, cfg):
    result, change = share_bolos(store, [BOLO, {**BOLO, "id": "b-2", "plate": "X!"}, {**BOLO, "id": ""},
                                         {**BOLO, "id": "b-3", "name": "John Doe"}, "junk",
                                         {**BOLO, "id": "b-4", "expires_at": "2001-01-01T00:00:00Z"}], cfg)
    [entry] = result.entries
    assert (entry.pattern, entry.source, entry.expires, entry.entered, entry.priority) == (
        "BOL042", "bolo:b-1", "2999-01-01", "2026-12-01", 2)
    assert [e.where for e in result.errors] == ["bolo b-2", "bolo 3", "bolo b-3", "bolo 5"]
    assert "personal data (name)" in result.errors[2].message and result.expired == 1
    assert (change.version, change.added) == (1, 1)
    _, change = share_bolos(store, BOLO, cfg)  # shared again, as it was: nothing changes
    assert not change.changed and change.unchanged == 1
    _, change = share_bolos(store, {**BOLO, "expires_at": "2001-01-01"}, cfg)  # expired since: taken off
    assert (change.version, change.removed) == (2, 1) and patterns(store) == set()


def test_a_retained_snapshot_that_does_not_verify_is_replaced(department, capsys):
    forged = make_config(department.dir, hotlist={"sync_key": "x" * 32},
                         uplink={"host": "127.0.0.1", "port": department.port})
    send(forged, snapshot_body([Entry("EVIL11", "bolo")], 99, LIST_ID), False)
    assert department.import_text(extract("V|ABC123|CO|V1")) == 0
    assert department("hotlist", "publish") == 0
    captured = capsys.readouterr()
    assert "retained snapshot is not a list of ours (signature does not verify" in captured.err
    assert "the broker held none" in captured.out


def test_an_import_that_overlaps_a_bolo_share_changes_nothing_and_says_so(store, cfg):
    def extract_rows():
        yield Entry("AAA111", "stolen_vehicle")
        share_bolos(store, BOLO, cfg)  # meanwhile, the server shares a BOLO
        yield Entry("BBB222", "stolen_vehicle")

    repository.replace_department_list(store, [Entry("OLD111", "stolen_vehicle")], "import")
    with pytest.raises(ValueError, match="the list changed while this one was read in .* import again"):
        repository.replace_department_list(store, extract_rows(), "import")
    assert patterns(store) == {"OLD111", "BOL042"} and repository.meta(store).version == 2


def test_a_bolo_a_unit_queued_for_upload_is_shared_as_it_comes(store, cfg, tmp_path):
    """The records the units upload (``bolo_uploads``, alprd.bolos/1) go to share_bolos as they are."""
    officer = Entry("OFF123", "bolo", case_number="CFS-5", note="red pickup", expires="2999-12-31",
                    officer_entered=True)
    repository.add_officer_entry(store, officer, entered_by="off1")
    records = store.query("select * from bolo_uploads")
    dept = Store(tmp_path / "dept.db")
    result, change = share_bolos(dept, records, cfg)
    [entry] = result.entries
    assert (entry.pattern, entry.case_number, entry.note, entry.expires) == ("OFF123", "CFS-5", "red pickup",
                                                                             "2999-12-31")
    assert entry.source == f"bolo:{records[0]['id']}" and change.version == 1
    dept.close()
