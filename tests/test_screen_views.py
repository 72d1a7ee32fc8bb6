"""What the screen shows, the officers' records on the wire, and the [screen] settings (pure parts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alprd.config import ConfigError, config_from_dict
from alprd.screen.views import differences, health, local_time
from alprd.uplink.schema import check_records
from alprd.uplink.wire import Receipt, WireError, decode_receipt, encode_receipt, encode_records

NOW = datetime.now(UTC)  # encode_records stamps sent_at with the real clock
GOOD = {"id": "3f0c8f0e-5a7e-4a53-9d43-0c1d2e3f4a5b", "alert_id": "a1", "disposition": "wrong_state",
        "note": "", "user": "off1", "ts": "2026-12-02T11:00:00.000000Z"}


@pytest.mark.parametrize("plate, pattern, marks, words", [
    ("ABC123", "ABC123", [False] * 6, ""),
    ("A8C123", "ABC123", [False, True, False, False, False, False], "read 8 where the list has B"),
    ("ABC1234", "ABC123", [False] * 6 + [True], "read 4, not on the list"),
    ("XY1990", "XY?99*", [False] * 6, ""),  # wildcards stand for anything
])
def test_the_characters_that_differ_from_the_list_are_marked(plate, pattern, marks, words):
    assert differences(plate, pattern) == {"marks": marks, "text": words}


def test_times_are_shown_in_the_units_zone():
    from zoneinfo import ZoneInfo
    assert local_time("2026-07-01T17:30:00.000000Z", ZoneInfo("America/Chicago")) == "2026-07-01 12:30:00 CDT"


def test_the_health_strip_names_each_part_and_its_level():
    status = {"pipeline": {"fps": 14.8}, "gps": {"fix": {"state": "stale"}},
              "uplink": {"connected": False, "backlog": 40, "oldest_age_days": 26.0, "transfer": "warning"},
              "hotlist": {"version": 12, "updated_at": "x", "age_h": 3.5, "severity": "ok"}}
    strip = {h["name"]: (h["value"], h["level"]) for h in health(status)}
    assert strip["camera"] == ("14.8 fps", "ok") and strip["GPS"] == ("stale", "warn")
    assert strip["broker"] == ("offline", "bad")
    assert strip["backlog"] == ("40 reads, oldest 26.0 days; 30-day transfer warning", "warn")
    assert strip["hotlist"] == ("v12, 3.5 h old", "ok")
    no_uplink = {"storage": {"backlog": {"reads": 9, "oldest_age_h": 31 * 24.0}}}
    strip = {h["name"]: (h["value"], h["level"]) for h in health(no_uplink)}
    assert strip["broker"] == ("uplink off", "warn") and strip["hotlist"] == ("none loaded", "warn")
    assert strip["backlog"] == ("9 reads, oldest 31.0 days; 30-day transfer critical", "bad")


def test_disposition_batches_keep_the_contract_and_bad_records_are_refused_alone():
    body = json.loads(encode_records("dispositions", "car7", [GOOD], "0b7a1f2e-2c1d-4f4e-8a9b-1c2d3e4f5a6b"))
    assert body["schema"] == "alprd.dispositions/1" and body["device_id"] == "car7"
    assert body["dispositions"] == [GOOD]
    body["dispositions"].append({**GOOD, "disposition": "shrug"})
    batch = check_records("dispositions", json.dumps(body).encode(), "car7", NOW)
    assert batch.records == [GOOD] and "disposition 'shrug' is not one of" in batch.refused[0][0]
    with pytest.raises(WireError, match="the device of the topic"):
        check_records("dispositions", json.dumps(body).encode(), "car8", NOW)
    for kind in ("dispositions", "bolos"):
        assert decode_receipt(encode_receipt(Receipt(kind, "b1", 1, 0, "t"))).kind == kind


@pytest.mark.parametrize("screen, message", [
    ({"host": "0.0.0.0"}, "set screen.tls_cert and screen.tls_key"),
    ({"tls_cert": "/etc/alprd/screen.pem"}, "go together"),
    ({"timezone": "Mars/Olympus"}, "unknown"),
])
def test_screen_settings_are_checked(screen, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"screen": screen})
