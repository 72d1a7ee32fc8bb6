"""Pure uplink rules and the wire format, without a broker."""

from __future__ import annotations

import base64
import gzip
import json
import math
import tracemalloc
import uuid
import zlib
from datetime import UTC, datetime

import pytest

from alprd.config import ConfigError, config_from_dict
from alprd.records import Read
from alprd.uplink.pacing import DAY_S, backlog_severity, backoff_delay, batch_wait, resend_delay
from alprd.uplink.schema import MAX_BATCH_BYTES, check_batch
from alprd.uplink.wire import (
    BATCH_SCHEMA,
    Receipt,
    WireError,
    decode_receipt,
    device_of,
    encode_batch,
    encode_receipt,
    subscription,
    topic,
)

NOW = datetime.now(UTC)


def test_backoff_grows_to_the_cap_and_jitters_within_half_a_step():
    lows = [backoff_delay(n, 1.0, 60.0, rand=lambda: 0.0) for n in range(10)]
    highs = [backoff_delay(n, 1.0, 60.0, rand=lambda: 1.0) for n in range(10)]
    assert lows[:4] == [0.5, 1.0, 2.0, 4.0]
    assert highs[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(highs) == 60.0 and lows[-1] == 30.0
    assert backoff_delay(10_000, 1.0, 60.0) <= 60.0  # no overflow for a unit offline for weeks


def test_resend_waits_at_least_the_receipt_timeout_and_grows_to_a_cap():
    assert [resend_delay(a, 60, lambda: 0.0) for a in (0, 1, 2, 4, 9)] == [60, 120, 240, 960, 960]
    assert resend_delay(0, 60, lambda: 1.0) == 120


def test_receipts_round_trip_and_anything_else_is_a_wire_error():
    receipt = Receipt("reads", str(uuid.uuid4()), 20, 1, "2026-01-01T00:00:00.000000Z")
    assert decode_receipt(encode_receipt(receipt)) == receipt
    good = json.loads(encode_receipt(receipt))
    for bad in [b"", b"[" * 100_000, b"x" * 2000, json.dumps({**good, "schema": "x"}).encode(),
                json.dumps({**good, "kind": "status"}).encode(), json.dumps({**good, "count": -1}).encode(),
                json.dumps({**good, "refused": True}).encode(), json.dumps({**good, "batch_id": 7}).encode()]:
        with pytest.raises(WireError):
            decode_receipt(bad)


def test_batch_goes_when_full_or_when_its_oldest_read_is_old_enough():
    assert batch_wait(0, None, 100, 30) == math.inf
    assert batch_wait(100, 1.0, 100, 30) == 0
    assert batch_wait(5, 10.0, 100, 30) == pytest.approx(20.0)
    assert batch_wait(5, 31.0, 100, 30) == 0


def test_backlog_severity_against_the_transfer_window():
    assert backlog_severity(None, 25, 30) == "ok"
    assert backlog_severity(24.9 * DAY_S, 25, 30) == "ok"
    assert backlog_severity(25 * DAY_S, 25, 30) == "warning"
    assert backlog_severity(30 * DAY_S, 25, 30) == "critical"


def test_topics_and_shared_subscriptions():
    assert topic("alprd", "car7", "reads") == "alprd/car7/reads"
    assert device_of("alprd", "alprd/car7/alerts") == "car7"
    assert subscription("alprd", "reads", "dept") == "$share/dept/alprd/+/reads"
    with pytest.raises(WireError):
        device_of("alprd", "other/car7/reads")
    with pytest.raises(ValueError):
        topic("alprd", "car7", "secrets")


def _row(**over):
    read = Read("ABC123", 0.91, (0.9, 0.95), "cam0", "car7", box=(1, 2, 30, 12),
                crop_jpeg=b"\xff\xd8jpeg\xff\xd9", lat=39.7, lon=-104.9, gps_stale=True)
    row = read.to_row()
    row.update(over)
    return row


def test_batch_round_trip_keeps_every_field_and_the_crop():
    rows = [_row(), _row(crop_jpeg=None, box=None)]
    batch_id = str(uuid.uuid4())
    payload = encode_batch("car7", rows, batch_id=batch_id)
    assert payload[:2] == b"\x1f\x8b"
    batch = check_batch(payload, "car7", NOW)
    assert (batch.batch_id, batch.device_id, batch.refused) == (batch_id, "car7", [])
    got = batch.reads[0]
    for key in ("id", "plate", "confidence", "ts", "camera_id", "lat", "lon", "char_confidences",
                "box", "crop_jpeg", "gps_stale"):
        assert got[key] == rows[0][key], key
    assert batch.reads[1]["crop_jpeg"] is None and batch.reads[1]["box"] is None


def test_bad_reads_are_refused_one_by_one_and_bad_batches_whole():
    good = json.loads(gzip.decompress(encode_batch("car7", [_row()])))
    bad_id = dict(good["reads"][0], id="not-a-uuid")
    no_plate = dict(good["reads"][0], id=str(uuid.uuid4()), plate=None)
    bad_crop = dict(good["reads"][0], id=str(uuid.uuid4()), crop_jpeg="***")
    good["reads"] += [bad_id, no_plate, bad_crop, "junk"]
    batch = check_batch(json.dumps(good).encode(), "car7", NOW)  # plain JSON is accepted too
    assert len(batch.reads) == 1 and len(batch.refused) == 4
    reasons = [reason for reason, _ in batch.refused]
    assert any("not a UUID" in r for r in reasons)
    assert any("plate" in r for r in reasons)
    assert batch.refused[-1][1] == "junk"
    for payload, match in [(b"\x1f\x8bnot gzip", "gzip"), (b"{", "JSON"),
                           (json.dumps({"schema": "x"}).encode(), BATCH_SCHEMA),
                           (json.dumps({"schema": BATCH_SCHEMA, "device_id": "car7"}).encode(), "reads"),
                           (json.dumps({**good, "device_id": "car8"}).encode(), "device of the topic")]:
        with pytest.raises(WireError, match=match):
            check_batch(payload, "car7", NOW)
    assert base64.b64decode(good["reads"][0]["crop_jpeg"]) == _row()["crop_jpeg"]


@pytest.mark.parametrize("uplink, message", [
    ({"backlog_warn_days": 30, "backlog_critical_days": 30}, "backlog_critical_days must be greater"),
    ({"cert_file": "/etc/c.pem"}, "cert_file needs uplink.ca_file"),
    ({"ca_file": "/etc/ca.pem", "key_file": "/etc/k.pem"}, "key_file needs uplink.cert_file"),
    ({"reconnect_min_s": 10, "reconnect_max_s": 5}, "reconnect_max_s must be >="),
    ({"topic_prefix": "a/#"}, "topic_prefix"),
])
def test_inconsistent_uplink_config_is_refused_with_the_key(uplink, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"uplink": uplink})


def test_missing_tls_file_is_a_config_error_naming_the_key(tmp_path):
    from alprd.uplink.client import make_client

    cfg = config_from_dict({"uplink": {"ca_file": str(tmp_path / "nope.pem")}}).uplink
    with pytest.raises(ConfigError, match="ca_file"):
        make_client(cfg, "x")


def _gzip_stream(chunk: bytes, times: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([*(packer.compress(chunk) for _ in range(times)), packer.flush()])


@pytest.mark.parametrize("field, value, reason", [
    ("lat", {"deg": 39}, "lat is not a number"),
    ("lat", 2**70, "lat is not a number"),
    ("lon", 181.0, "lon is not a number"),
    ("confidence", True, "confidence is not a number"),
    ("char_confidences", [[[[0.5]]]], "char_confidences"),
    ("device_id", "car8", "device of the topic"),
    ("ts", "2999-01-01T00:00:00.000000Z", "in the future"),
    ("ts", "yesterday", "UTC timestamp"),
    ("plate", "X" * 100, "plate is not printable text"),
    ("camera_id", "cam\x00", "camera_id"),
    ("box", [1, 2, 3], "box"),
    ("crop_jpeg", "A" * 800_000, "crop_jpeg"),
    ("gps_stale", "yes", "gps_stale"),
])
def test_hostile_fields_are_refused_with_the_reason_and_the_rest_of_the_batch_kept(field, value, reason):
    body = json.loads(gzip.decompress(encode_batch("car7", [_row(), _row()])))
    body["reads"][1][field] = value
    batch = check_batch(json.dumps(body).encode(), "car7", NOW)
    assert len(batch.reads) == 1 and len(batch.refused) == 1
    assert reason in batch.refused[0][0] and len(batch.refused[0][0]) < 200


def test_bombs_and_deep_nesting_are_refused_whole_without_exhausting_memory():
    bomb = _gzip_stream(b"\0" * (1 << 20), 200)  # 200 MB of zeros in 200 KB
    tracemalloc.start()
    with pytest.raises(WireError, match="decompresses to more than"):
        check_batch(bomb, "car7", NOW)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * MAX_BATCH_BYTES  # the cap and zlib's output buffer, not 200 MB
    with pytest.raises(WireError, match="nested too deeply"):
        check_batch(gzip.compress(b"[" * 1_000_000), "car7", NOW)
    with pytest.raises(WireError, match="JSON"):
        check_batch(json.dumps({"schema": BATCH_SCHEMA, "x": float("nan")}).encode(), "car7", NOW)
    with pytest.raises(WireError, match="truncated"):
        check_batch(encode_batch("car7", [_row()])[:-10], "car7", NOW)
