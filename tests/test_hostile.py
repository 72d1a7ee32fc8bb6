"""Hostile input, fuzzed: every parser either succeeds or raises the project's own clear error.

NMEA sentences (with valid checksums, so the field checks are reached), hotlist
rows and files, NCIC extracts and BOLO records, configuration files and image
bytes. Bounded in count, not time (``deadline=None``): the shared CI cores are
slow and busy.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hardware_fakes import GGA, RMC, VTG, nmea
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alprd.config import Config, ConfigError, HotlistConfig, load_config
from alprd.gps.nmea import LineAssembler, NmeaTracker
from alprd.hotlist import repository, sync
from alprd.hotlist.department import bolo_entries
from alprd.hotlist.entries import (
    FIELD_ALIASES,
    EntryError,
    make_entry,
    normalize_pattern,
    parse_file_text,
)
from alprd.hotlist.match import PlateIndex
from alprd.hotlist.ncic import parse_extract
from alprd.imageio import ImageError, decode_image
from alprd.store import Store

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CFG = HotlistConfig()
BOLO_FIELDS = ("id", "plate", "category", "case_number", "note", "priority", "expires_at", "entered_by", "entered_at")


# -- NMEA -------------------------------------------------------------------------
FIELD_TEXT = st.one_of(
    st.sampled_from(["", "A", "V", "N", "S", "E", "W", "nan", "inf", "-inf", "-1", "1e999", "0", "360.1",
                     "4807.038", "9000.000", "9100.0", "4860.0", "18000.0", "01131.000", "123519", "230394",
                     "999999", "1", "08", "0.9", "-0.0"]),
    st.text(alphabet="0123456789.-+eEAVNSW", max_size=12),
)
VALID = [s[1:s.index("*")] for s in (RMC, GGA, VTG)]  # the bodies, without "$" and checksum


@st.composite
def sentences(draw) -> str:
    """A valid sentence with a few fields replaced, or a field dropped or added; checksum recomputed."""
    fields = draw(st.sampled_from(VALID)).split(",")
    for _ in range(draw(st.integers(1, 3))):
        fields[draw(st.integers(1, len(fields) - 1))] = draw(FIELD_TEXT)
    change = draw(st.sampled_from(["none", "add", "drop"]))
    if change == "add":
        fields.insert(draw(st.integers(1, len(fields))), draw(FIELD_TEXT))
    elif change == "drop":
        fields.pop()
    return nmea(",".join(fields))


@FUZZ
@given(st.lists(st.one_of(sentences(), st.text(max_size=90)), max_size=8))
def test_nmea_sentences_never_raise_and_any_fix_is_possible(lines):
    t = NmeaTracker()
    for line in lines:
        assert isinstance(t.feed_line(line, 1.0), bool)
    assert t.counters.garbage == sum(t.counters.rejected.values())
    if t.fix is not None:
        assert -90 <= t.fix.lat <= 90 and -180 <= t.fix.lon <= 180
        for value in (t.fix.speed_kmh, t.fix.heading_deg, t.fix.hdop):
            assert value is None or (math.isfinite(value) and value >= 0)


@FUZZ
@given(st.binary(max_size=400))
def test_nmea_bytes_never_raise(data):
    t, lines = NmeaTracker(), LineAssembler()
    for line in lines.feed(data):
        t.feed_line(line, 1.0)


# -- hotlist -------------------------------------------------------------------------
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(["stolen_vehicle", "bolo", "parking", "ABC123", "AB?12*", "*" * 40 + "XYZ", "2026-01-01"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
KEYS = st.one_of(st.sampled_from([a for aliases in FIELD_ALIASES.values() for a in aliases] + ["name", "DOB"]),
                 st.text(max_size=8))


@FUZZ
@given(st.dictionaries(KEYS, ANY_VALUE, max_size=8))
def test_hotlist_rows_become_entries_or_entry_errors(row):
    try:
        entry = make_entry(row, CFG)
    except EntryError as err:
        assert str(err) and len(str(err)) < 500
        return
    assert normalize_pattern(entry.pattern) == entry.pattern
    PlateIndex([entry.pattern]).match("ABC123")


CSV_CELL = st.one_of(st.text(max_size=12), st.sampled_from(['"', ",", "\x00", "\r", "ABC123", "bolo", "9"]))
CSV_FILES = st.lists(st.lists(CSV_CELL, max_size=5).map(",".join), max_size=6).map(
    lambda rows: "plate,category,priority\n" + "\n".join(rows))
JSON_FILES = st.lists(st.dictionaries(KEYS, ANY_VALUE, max_size=5), max_size=4).map(
    lambda rows: "\n".join(json.dumps(r) for r in rows))
HOTLIST_TEXT = st.one_of(CSV_FILES, JSON_FILES, st.text(max_size=200))


@FUZZ
@given(st.one_of(HOTLIST_TEXT.map(str.encode), st.binary(max_size=200)), st.sampled_from(["csv", "json"]))
def test_hotlist_files_parse_or_raise_entry_errors(data, kind):
    try:
        result = parse_file_text(data, kind, CFG)
    except EntryError as err:
        assert str(err) and len(str(err)) < 500
        return
    assert all(e.where and e.message for e in result.errors)
    PlateIndex([e.pattern for e in result.entries]).match("ABC123")


NCIC_CODES = ["FILE", "LIC", "LIS", "LIT", "LIY", "NIC", "ORI", "OCA", "DTE", "EXP", "MIS", "VMA", "NAM", "DOB"]
NCIC_CELL = st.one_of(st.text(max_size=12), st.sampled_from(
    ["V", "LP", "F", "W", "MP", "PO", "ABC123", "20261101", "20991231", "19991231", "AMBER ALERT", "|", '"', "\t"]))
PERSON_MARK = "QQPERSONQQ"  # what the personal columns hold: it must never reach an entry


@st.composite
def ncic_extracts(draw) -> str:
    """A header of NCIC codes (required ones sometimes missing) and rows of cells, | , or tab separated."""
    codes = draw(st.lists(st.sampled_from(NCIC_CODES), min_size=1, max_size=9, unique=True))
    sep = draw(st.sampled_from(["|", ",", "\t"]))
    rows = [sep.join(PERSON_MARK if c in ("NAM", "DOB") else draw(NCIC_CELL) for c in codes)
            for _ in range(draw(st.integers(0, 5)))]
    if draw(st.booleans()):
        rows.append(draw(st.text(max_size=40)))
    return "\n".join([sep.join(codes), *rows])


@FUZZ
@given(st.one_of(ncic_extracts(), ncic_extracts().map(str.encode), st.binary(max_size=200)))
def test_ncic_extracts_parse_or_raise_entry_errors_and_never_keep_personal_data(data):
    try:
        result = parse_extract(data, CFG)
    except EntryError as err:
        assert str(err) and len(str(err)) < 500
        return
    assert all(e.where and e.message and len(e.message) < 500 for e in result.errors)
    assert all(PERSON_MARK not in json.dumps(e.to_json()) for e in result.entries)
    PlateIndex([e.pattern for e in result.entries]).match("ABC123")


@FUZZ
@given(st.lists(st.one_of(st.dictionaries(st.sampled_from(list(BOLO_FIELDS)) | KEYS, ANY_VALUE, max_size=9),
                          ANY_VALUE), max_size=4))
def test_bolo_records_become_entries_or_row_errors(records):
    result = bolo_entries(records, CFG)
    assert len(result.entries) + len(result.errors) == len(records)
    assert all(e.source.startswith("bolo:") for e in result.entries)


# -- configuration ---------------------------------------------------------------------
SECTIONS = {name: sorted(field.annotation.model_fields) for name, field in Config.model_fields.items()}
TOML_VALUE = st.one_of(
    st.integers(-10**20, 10**20).map(str), st.sampled_from(["inf", "-inf", "nan", "1e999", "true", "0.0", "-1"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=20).map(json.dumps), st.sampled_from(['"env:ALPRD_FUZZ_SECRET"', '"env:ALPRD_FUZZ_UNSET"']),
    st.lists(st.integers(0, 5000).map(str), max_size=4).map(lambda v: f"[{', '.join(v)}]"),
)


@st.composite
def config_files(draw) -> str:
    lines = []
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "bogus"]), max_size=3, unique=True)):
        lines.append(f"[{section}]")
        keys = st.sampled_from(SECTIONS.get(section) or ["x"]) | st.from_regex(r"[a-z_]{1,8}", fullmatch=True)
        for key in draw(st.lists(keys, max_size=4, unique=True)):
            lines.append(f"{key} = {draw(TOML_VALUE)}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(st.one_of(config_files().map(str.encode), st.binary(max_size=200)))
def test_config_files_load_or_raise_config_errors(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alprd.toml"
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError as err:
            message = str(err)
            assert message and len(message) < 5000
            assert "fuzz-secret-value" not in message


def setup_module() -> None:  # hypothesis cannot reuse a function-scoped monkeypatch
    os.environ["ALPRD_FUZZ_SECRET"] = "fuzz-secret-value"
    os.environ.pop("ALPRD_FUZZ_UNSET", None)


def teardown_module() -> None:
    os.environ.pop("ALPRD_FUZZ_SECRET", None)


# -- images -------------------------------------------------------------------------
_PIXELS = np.random.default_rng(2).integers(0, 255, (24, 32, 3), dtype=np.uint8)
SAMPLES = [cv2.imencode(ext, _PIXELS)[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".webp")]


@st.composite
def damaged_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@FUZZ
@given(st.one_of(damaged_images(), st.binary(max_size=300)))
def test_image_bytes_decode_or_raise_image_errors(data):
    try:
        image = decode_image(data, max_pixels=256 * 256)
    except ImageError as err:
        assert str(err)
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.shape[0] * image.shape[1] <= 256 * 256


# -- hotlist sync messages (the unit's snapshot and delta topics) --------------------
SYNC_KEY = "f" * 64


@st.composite
def sync_payloads(draw) -> bytes:
    """Random bytes, or a validly signed body whose header and rows are mangled."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    header = {"type": draw(st.sampled_from(["snapshot", "delta", "other", 7, None])),
              "version": draw(st.one_of(st.integers(-2, 2**70), st.floats(), st.text(max_size=5))),
              "base_version": draw(st.one_of(st.integers(0, 3), st.none())),
              "remove": draw(st.one_of(st.none(), st.lists(st.text(max_size=12), max_size=3), st.integers()))}
    rows = draw(st.lists(st.one_of(
        st.fixed_dictionaries({"pattern": st.text(max_size=14), "category": st.sampled_from(["stolen_vehicle", "x"])}),
        st.text(max_size=30), st.integers()), max_size=4))
    body = "\n".join(json.dumps(x, default=str) for x in [header, *rows]).encode()
    if draw(st.booleans()):
        body = body[:draw(st.integers(0, len(body)))]
    return sync.sign(body, SYNC_KEY)


@FUZZ
@given(sync_payloads())
def test_sync_messages_apply_or_are_refused_and_the_list_stays(payload):
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "a.db")
        cfg = HotlistConfig(sync_key=SYNC_KEY)
        before = repository.meta(store).version
        try:
            sync.apply_message(store, cfg, payload, "fuzz")
        except sync.SyncRefused:
            assert repository.meta(store).version == before
        store.close()


def test_a_long_header_without_a_plate_column_gives_a_short_error():
    # found by the fuzzer above in CI: the whole header was echoed
    header = ",".join(f"column{i}" * 5 for i in range(40))
    with pytest.raises(EntryError, match="no plate column") as err:
        parse_file_text(f"{header}\n1,2\n".encode(), "csv", CFG)
    assert len(str(err.value)) < 300
