"""Hostile MQTT payloads on every topic the receiver and the unit subscribe to.

The receiver's (``<prefix>/+/reads|alerts|status|heartbeat``) and the unit's
(``<prefix>/<device>/receipt``): first the pure checks, fuzzed by hypothesis,
then thousands of messages through a real Mosquitto, after which a normal
upload must still arrive whole. Bounded in count (and the live tests in
seconds); the seed is fixed, so a failure repeats.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import uuid
import zlib
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_uplink import Running, fill, ingested, uplink_config, wait_until

from alprd.records import Read
from alprd.uplink.ingest import Ingest, IngestDB
from alprd.uplink.schema import check_batch, check_message
from alprd.uplink.uploader import Uploader
from alprd.uplink.wire import RECEIPT_SCHEMA, WireError, decode_receipt, encode_batch

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime.now(UTC)
HOSTILE = [None, True, 0, -1, 0.5, 2**70, -(2**70), 1e308, "", "\x00", "x" * 5000, {"a": 1}, [[[[1]]]], [],
           "2999-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000000Z", "car8", str(uuid.uuid4())]
GOOD = json.loads(gzip.decompress(encode_batch("car9", [
    Read("ABC123", 0.9, [0.9] * 6, "cam0", "car9", box=[1, 2, 30, 12], lat=1.0, lon=2.0).to_row()])))
READ_KEYS = [*GOOD["reads"][0], "extra"]
VALUES = st.one_of(st.sampled_from(HOSTILE), st.integers(), st.floats(), st.text(max_size=40),
                   st.lists(st.floats(), max_size=6))


def _poisoned_batch(rng: random.Random) -> dict:
    body = json.loads(json.dumps(GOOD))
    read = body["reads"][0]
    for _ in range(rng.randint(1, 3)):
        read[rng.choice(READ_KEYS)] = rng.choice(HOSTILE)
    if rng.random() < 0.2:
        body[rng.choice(["schema", "batch_id", "device_id", "sent_at", "reads"])] = rng.choice(HOSTILE)
    return body


def hostile_payloads(rng: random.Random, n: int) -> list[bytes]:
    makers = [
        lambda: rng.randbytes(rng.randint(0, 300)),
        lambda: gzip.compress(rng.randbytes(200))[: rng.randint(0, 120)],
        lambda: json.dumps(_poisoned_batch(rng)).encode(),
        lambda: gzip.compress(json.dumps(_poisoned_batch(rng)).encode()),
        lambda: b"[" * rng.randint(1000, 50_000),
        lambda: json.dumps(rng.choice(HOSTILE)).encode(),
        lambda: json.dumps({"device_id": rng.choice(HOSTILE), "state": rng.choice(HOSTILE)}).encode(),
    ]
    return [rng.choice(makers)() for _ in range(n)]


def gzip_bomb(megabytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([*(packer.compress(b"\0" * (1 << 20)) for _ in range(megabytes)), packer.flush()])


# -- the pure checks ----------------------------------------------------------------
@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.dictionaries(st.sampled_from(READ_KEYS), VALUES, max_size=6).map(
                     lambda over: json.dumps({**GOOD, "reads": [{**GOOD["reads"][0], **over}]}).encode())))
def test_batches_are_checked_or_refused_with_a_wire_error(payload):
    try:
        batch = check_batch(payload, "car9", NOW)
    except WireError as err:
        assert 0 < len(str(err)) < 300
        return
    for row in batch.reads:
        assert row["device_id"] == "car9" and isinstance(row["plate"], str)
        assert row["lat"] is None or -90 <= row["lat"] <= 90
        assert row["lon"] is None or -180 <= row["lon"] <= 180
    assert all(0 < len(reason) < 300 for reason, _ in batch.refused)


def test_a_read_with_a_huge_id_is_refused_with_a_short_reason():
    """The fuzz test's find: the reason quoted the whole id (thousands of characters) into the log."""
    payload = json.dumps({**GOOD, "reads": [{**GOOD["reads"][0], "id": "x" * 5000}]}).encode()
    batch = check_batch(payload, "car9", NOW)
    assert not batch.reads
    (reason, _), = batch.refused
    assert "is not a UUID" in reason and len(reason) < 120


@FUZZ
@given(st.sampled_from(["alerts", "status", "heartbeat"]),
       st.one_of(st.binary(max_size=200), st.dictionaries(st.sampled_from(["device_id", "state", "x"]), VALUES)
                 .map(lambda d: json.dumps(d).encode())))
def test_device_messages_are_checked_or_refused_with_a_wire_error(kind, payload):
    try:
        text = check_message(kind, payload, "car9")
    except WireError as err:
        assert 0 < len(str(err)) < 300
        return
    assert json.loads(text).get("device_id") in (None, "car9")


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.dictionaries(st.sampled_from(["schema", "kind", "batch_id", "count", "refused", "committed_at"]),
                                 VALUES).map(lambda d: json.dumps({"schema": RECEIPT_SCHEMA, **d}).encode())))
def test_receipts_are_checked_or_refused_with_a_wire_error(payload):
    try:
        receipt = decode_receipt(payload)
    except WireError as err:
        assert 0 < len(str(err)) < 300
        return
    assert receipt.kind in ("reads", "alerts") and receipt.count >= 0


# -- through a real broker ----------------------------------------------------------
def _publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.max_queued_messages_set(0)
    sender.connect("127.0.0.1", port)
    sender.loop_start()
    try:
        infos = [sender.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        sender.disconnect()
        sender.loop_stop()


def _no_callback_crashed(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.name == "paho.mqtt" and "exception" in r.getMessage().lower()]


@pytest.fixture
def roomy_broker(tmp_path):
    """A broker that queues every hostile message for the receiver (the default drops beyond 1,000)."""
    b = Broker(tmp_path, "max_queued_messages 10000\nallow_anonymous true")
    b.start()
    yield b
    b.stop()


def test_thousands_of_hostile_messages_then_a_normal_upload_arrives_whole(tmp_path, roomy_broker, store, caplog):
    broker = roomy_broker
    caplog.set_level(logging.ERROR, logger="paho.mqtt")
    rng = random.Random(18)
    topics = [f"alprd/{d}/{k}" for d in ("car9", "car7", "x" * 100) for k in ("reads", "alerts", "status", "heartbeat")]
    messages = [(rng.choice(topics), p) for p in hostile_payloads(rng, 2000)]
    messages += [("alprd/car9/reads", gzip_bomb(200)), ("alprd/car7/reads", json.dumps(GOOD).encode())]
    config = uplink_config(tmp_path, broker.port)
    ingest = Ingest(config.uplink, IngestDB(tmp_path / "dept.db"), "dept-fuzz")
    ingest.start()
    try:
        wait_until(lambda: ingest.link.connected, what="receiver connected")
        _publish_all(broker.port, messages)
        ids = fill(store, 50)
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: store.backlog()[0] == 0, timeout=60, what="the normal upload, after the hostile ones")
        finally:
            running.stop()
        stored = {r[0] for r in ingest.db.conn.execute("select id from reads where device_id = 'car7'")}
        assert stored == set(ids), "no hostile message stored a read as car7"
        assert ingested(ingest) >= 50
        refused = ingest.db.count("refused")
        assert refused > 1000 and ingest.stats["refused"] >= refused
        errors = [r[0] for r in ingest.db.conn.execute("select error from refused")]
        assert any("decompresses to more than" in e for e in errors)
        assert any("device of the topic" in e for e in errors)
        assert any("nested too deeply" in e for e in errors)
        assert max(len(r[0]) for r in ingest.db.conn.execute("select payload from refused")) <= 2048
    finally:
        ingest.stop()
        ingest.db.close()
    _no_callback_crashed(caplog)


def test_hostile_receipts_mark_nothing_and_real_ones_still_do(tmp_path, broker, store, caplog):
    caplog.set_level(logging.ERROR, logger="paho.mqtt")
    rng = random.Random(7)
    forged = [json.dumps({"schema": RECEIPT_SCHEMA, "kind": rng.choice(["reads", "alerts", "x"]),
                          "batch_id": str(uuid.uuid4()), "count": 20, "refused": 0,
                          "committed_at": "2026-01-01T00:00:00.000000Z"}).encode() for _ in range(200)]
    messages = [("alprd/car7/receipt", p) for p in hostile_payloads(rng, 800) + forged]
    config = uplink_config(tmp_path, broker.port)
    ids = fill(store, 60)
    running = Running(Uploader(config, store))
    try:
        wait_until(lambda: running.uploader.unheard >= 1, what="batches sent, with no receiver")
        _publish_all(broker.port, messages)
        assert store.backlog()[0] == 60 and running.uploader.link.connected
        ingest = Ingest(config.uplink, IngestDB(tmp_path / "dept.db"), "dept-fuzz")
        ingest.start()
        try:
            wait_until(lambda: store.backlog()[0] == 0, timeout=30, what="marked on the real receipts")
            assert {r[0] for r in ingest.db.conn.execute("select id from reads")} == set(ids)
        finally:
            ingest.stop()
            ingest.db.close()
    finally:
        running.stop()
    _no_callback_crashed(caplog)
