"""Signed hotlist sync: only verified, newer lists are applied; through a real broker."""

from __future__ import annotations

import asyncio
import json
import time

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, make_config
from structlog.testing import capture_logs

from alprd.audit import AccessLog
from alprd.cli import main
from alprd.hotlist import repository
from alprd.hotlist.entries import Entry
from alprd.hotlist.hotlist import Hotlist
from alprd.hotlist.sync import (
    HotlistSync,
    SyncRefused,
    apply_message,
    delta_body,
    publish,
    sign,
    snapshot_body,
    topics,
)
from alprd.store import Store

KEY = "k" * 32
LIST = [Entry("ABC123", "stolen_vehicle", case_number="C-1"), Entry("DEF456", "wanted_person")]


@pytest.fixture
def cfg(tmp_path):
    return make_config(tmp_path, hotlist={"sync_key": KEY}).hotlist


def patterns(store) -> set[str]:
    return {r["pattern"] for r in repository.list_entries(store, officer_only=False)}


def test_signed_newer_snapshot_and_delta_apply(store, cfg):
    out = apply_message(store, cfg, sign(snapshot_body(LIST, 5), KEY), "test")
    assert (out.kind, out.loaded) == ("snapshot", 2)
    out = apply_message(store, cfg, sign(delta_body([Entry("NEW777", "bolo")], ["DEF456"], 6, 5), KEY), "test")
    assert (out.loaded, out.removed) == (1, 1)
    assert patterns(store) == {"ABC123", "NEW777"}
    assert repository.meta(store).version == 6


@pytest.mark.parametrize("payload, reason", [
    (sign(snapshot_body(LIST, 9), "w" * 32), "signature does not verify"),
    (sign(snapshot_body(LIST, 9), KEY).replace(b"ABC123", b"ABC124"), "signature does not verify"),
    (snapshot_body(LIST, 9), "signature does not verify"),
    (sign(snapshot_body(LIST, 3), KEY), "not newer"),
    (sign(snapshot_body(LIST, 5), KEY), "not newer"),
    (sign(delta_body(LIST, [], 9, 4), KEY), "waiting for a snapshot"),
    (sign(b'{"format": "other"}', KEY), "not an alprd-hotlist/1"),
])
def test_bad_signature_old_version_or_gap_is_refused_and_list_stays(store, cfg, payload, reason):
    apply_message(store, cfg, sign(snapshot_body([Entry("KEEP11", "bolo")], 5), KEY), "test")
    with pytest.raises(SyncRefused, match=reason):
        apply_message(store, cfg, payload, "test")
    assert patterns(store) == {"KEEP11"} and repository.meta(store).version == 5


def test_without_a_key_nothing_is_accepted(store, tmp_path):
    with pytest.raises(SyncRefused, match="no \\[hotlist\\] sync_key"):
        apply_message(store, make_config(tmp_path).hotlist, sign(snapshot_body(LIST, 1), KEY), "test")


def test_bad_rows_in_a_verified_list_are_skipped(store, cfg):
    body = snapshot_body(LIST, 2).replace(b'"wanted_person"', b'"parking"')
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
        await asyncio.to_thread(publish, config, snapshot_body(LIST, 3), False)
        await _until(lambda: sync.accepted == 1)
        assert [m.entry["pattern"] for m in hot.match("ABC123")] == ["ABC123"]
        await asyncio.to_thread(publish, forged, snapshot_body([Entry("EVIL11", "bolo")], 99), False)
        await asyncio.to_thread(publish, config, delta_body([Entry("OLD111", "bolo")], [], 2, 1), True)
        await _until(lambda: sync.ignored == 2)  # forged, and older than the list in use
        await asyncio.to_thread(publish, config, delta_body([Entry("NEW777", "bolo")], ["ABC123"], 4, 3), True)
        await _until(lambda: sync.accepted == 2)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert patterns(store) == {"DEF456", "NEW777"}
    assert hot.match("ABC123") == [] and hot.match("NEW777")
    actions = [r.action for r in AccessLog(store).show()]
    assert actions == ["hotlist.sync"] * 2  # junk leaves no access-log record


def test_publish_command_reaches_a_unit_that_was_offline(broker, store, tmp_path):
    """The snapshot is retained: a unit that subscribes later still gets it."""
    toml = tmp_path / "server.toml"
    toml.write_text(f'[hotlist]\nsync_key = "{KEY}"\n[uplink]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                    f'[store]\nstate_dir = "{tmp_path}"\n')
    src = tmp_path / "list.csv"
    src.write_text("plate,category\nABC123,stolen_vehicle\nXYZ,parking\n")
    assert main(["-c", str(toml), "hotlist", "publish", str(src), "--version", "8"]) == 0
    config = make_config(tmp_path, hotlist={"sync_key": KEY},
                         uplink={"enabled": True, "host": "127.0.0.1", "port": broker.port})
    sync = HotlistSync(config, store)

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        await _until(lambda: sync.accepted == 1)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert patterns(store) == {"ABC123"} and repository.meta(store).version == 8


def test_junk_on_the_sync_topics_is_dropped_cheaply_and_real_deltas_still_apply(store, tmp_path):
    # Mosquitto drops what is queued for a client past 1,000 messages: the test is of the
    # unit's handling, so the broker keeps all of them.
    broker = Broker(tmp_path, extra_conf="allow_anonymous true\nmax_queued_messages 0")
    broker.start()
    config = make_config(tmp_path, hotlist={"sync_key": KEY},
                         uplink={"enabled": True, "host": "127.0.0.1", "port": broker.port})
    apply_message(store, config.hotlist, sign(snapshot_body(LIST, 5), KEY), "test")
    old = sign(snapshot_body([Entry("OLD111", "bolo")], 3), KEY)  # an old signed list, replayed
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
                                    [Entry("NEW777", "bolo")], ["ABC123"], 6, 5), KEY))])
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
    publish(config, snapshot_body([Entry("OLD111", "bolo")], 3), False)  # retained at the broker
    newer = tmp_path / "newer"
    newer.mkdir()
    newer_store = Store(newer / "alprd.db")
    apply_message(newer_store, config.hotlist, sign(snapshot_body(LIST, 5), KEY), "test")
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
    header, *rows = snapshot_body(LIST, 4).split(b"\n")
    doc = json.loads(header)
    doc["issued_at"] = "2026-01-01T00:00:00.000000Z"  # months old, signed by the department then
    old = sign(b"\n".join([json.dumps(doc).encode(), *rows]), KEY)
    with pytest.raises(SyncRefused, match="issued .* h ago"):
        apply_message(store, cfg, old, "test")
    assert repository.meta(store).version <= 0 and patterns(store) == set()
    apply_message(store, cfg, sign(snapshot_body(LIST, 5), KEY), "test")  # the next publish installs
    assert repository.meta(store).version == 5
