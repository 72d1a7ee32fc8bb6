"""The wire schema, enforced: what a receiver accepts from the network, as pure functions.

Everything that arrives over MQTT is hostile until it passes here. Sizes come
first (a gzip bomb is cut off at ``MAX_BATCH_BYTES`` decompressed, before it
fills memory), then JSON (no NaN or Infinity, nesting bounded by the
interpreter's recursion limit, caught), then every field's type, range and
size, and the device: the one in the topic (which the broker's ACL ties to the
unit's login) must be the one in the body, so one car cannot store reads as
another. A failed envelope refuses the whole message; a failed read inside a
good batch refuses that read alone. :class:`~alprd.uplink.wire.WireError` says
what is wrong, in a sentence short enough to store.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alprd.hotlist.alerts import Disposition
from alprd.records import parse_iso, to_columns
from alprd.uplink.wire import BATCH_SCHEMA, RECORD_KINDS, WireError

MAX_BATCH_BYTES = 64 * 1024 * 1024  # a batch's JSON, decompressed: 10,000 reads with 6 KB crops
MAX_MESSAGE_BYTES = 1024 * 1024  # an alert, status or heartbeat
MAX_READS = 10_000  # uplink.batch_size's upper bound
MAX_CROP_CHARS = 700_000  # base64 of a 512 KB JPEG
MAX_TEXT = 64  # ids, camera and device names
MAX_PLATE = 16
MAX_CHARS = 32  # per-character confidences
MAX_CANDIDATES = 10  # vision.candidates' upper bound
MAX_NOTE = 500  # an officer's note on a disposition or BOLO
MAX_RECORDS = 1000  # dispositions or BOLOs in one batch
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SLACK = timedelta(days=1)  # a unit's clock may run ahead this much
GZIP = b"\x1f\x8b"


@dataclass
class Batch:
    """A checked batch: rows ready for the ``reads`` table, and why each other read was refused."""

    batch_id: str
    device_id: str
    sent_at: str
    reads: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[str, Any]] = field(default_factory=list)  # (reason, the read as received)


def decompress(payload: bytes, limit: int = MAX_BATCH_BYTES) -> bytes:
    """gzip (or plain, from a test tool) to at most ``limit`` bytes, whatever the payload claims."""
    if payload[:2] != GZIP:
        if len(payload) > limit:
            raise WireError(f"message of {len(payload)} bytes (at most {limit})")
        return payload
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(payload, limit)
    except zlib.error as err:
        raise WireError(f"not gzip-compressed JSON ({err})") from None
    if inflater.unconsumed_tail:
        raise WireError(f"decompresses to more than {limit} bytes")
    if not inflater.eof:
        raise WireError("not gzip-compressed JSON (truncated)")
    return raw


def _no_constant(name: str) -> None:
    raise WireError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise WireError("JSON nested too deeply") from None
    except ValueError as err:  # also bad UTF-8, and integers of more than 4300 digits
        raise WireError(f"not UTF-8 JSON ({str(err)[:100]})") from None


def _text(value: Any, name: str, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_len or not value.isprintable():
        raise WireError(f"{name} is not printable text of 1 to {max_len} characters")
    return value


def _uuid(value: Any, name: str) -> str:
    try:
        return str(uuid.UUID(_text(value, name, 36)))
    except ValueError:
        raise WireError(f"{name} {str(value)[:MAX_TEXT]!r} is not a UUID") from None


def _number(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> float:
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (math.isfinite(value) and lo <= value <= hi):
        raise WireError(f"{name} is not {'an integer' if integer else 'a number'} from {lo} to {hi}")
    return value


def _timestamp(value: Any, name: str, now: datetime) -> str:
    try:
        ts = parse_iso(_text(value, name))
    except ValueError:
        raise WireError(f"{name} is not a UTC timestamp like 2026-01-31T12:00:00.000000Z") from None
    if not EARLIEST <= ts <= now + CLOCK_SLACK:
        raise WireError(f"{name} {value} is before 2000 or in the future")
    return value


def _optional(item: dict[str, Any], key: str, check, *args) -> Any:
    value = item.get(key)
    return None if value is None else check(value, key, *args)


def _numbers(value: Any, name: str, max_items: int, lo: float, hi: float, integer: bool = False) -> list[float]:
    if not isinstance(value, list) or len(value) > max_items:
        raise WireError(f"{name} is not a list of at most {max_items} numbers")
    return [_number(v, name, lo, hi, integer) for v in value]


def _texts(value: Any, name: str, max_items: int, max_len: int) -> list[str]:
    if not isinstance(value, list) or len(value) > max_items:
        raise WireError(f"{name} is not a list of at most {max_items} texts")
    return [_text(v, name, max_len) for v in value]


def _crop(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or len(value) > MAX_CROP_CHARS:
        raise WireError(f"{name} is not base64 text of at most {MAX_CROP_CHARS} characters")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise WireError(f"{name} is not base64") from None


def check_read(item: Any, device_id: str, now: datetime) -> dict[str, Any]:
    """One read of a batch from ``device_id`` as a ``reads`` row; unknown keys are ignored."""
    if not isinstance(item, dict):
        raise WireError("a read is not a JSON object")
    values = {
        "id": _uuid(item.get("id"), "id"),
        "plate": _text(item.get("plate"), "plate", MAX_PLATE),
        "confidence": _number(item.get("confidence"), "confidence", 0, 1),
        "char_confidences": _optional(item, "char_confidences", _numbers, MAX_CHARS, 0, 1),
        "camera_id": _text(item.get("camera_id"), "camera_id"),
        "device_id": device_id,
        "ts": _timestamp(item.get("ts"), "ts", now),
        "box": _optional(item, "box", _numbers, 4, 0, 100_000, True),
        "frames": _optional(item, "frames", _number, 1, 1_000_000, True),
        "lat": _optional(item, "lat", _number, -90, 90),
        "lon": _optional(item, "lon", _number, -180, 180),
        "speed_kmh": _optional(item, "speed_kmh", _number, 0, 1000),
        "heading_deg": _optional(item, "heading_deg", _number, 0, 360),
        "gps_fix_ts": _optional(item, "gps_fix_ts", _timestamp, now),
        "gps_stale": item.get("gps_stale", False),
        "crop_jpeg": _optional(item, "crop_jpeg", _crop),
        "candidates": _optional(item, "candidates", _texts, MAX_CANDIDATES, MAX_PLATE) or [],
        "candidate_scores": _optional(item, "candidate_scores", _numbers, MAX_CANDIDATES, 0, 1) or [],
        "region": _optional(item, "region", _text, 8),
    }
    if item.get("device_id") not in (None, device_id):
        raise WireError(f"read {values['id']}: device_id is not {device_id!r}, the device of the topic")
    if values["box"] is not None and len(values["box"]) != 4:
        raise WireError(f"read {values['id']}: box is not four pixel coordinates")
    if not isinstance(values["gps_stale"], bool):
        raise WireError(f"read {values['id']}: gps_stale is not true or false")
    crop = values.pop("crop_jpeg")
    return {**to_columns(values), "crop_jpeg": crop}


def check_batch(payload: bytes, device_id: str, now: datetime) -> Batch:
    """A read batch published on ``device_id``'s topic; bad reads are refused one by one."""
    body = parse_json(decompress(payload))
    if not isinstance(body, dict) or body.get("schema") != BATCH_SCHEMA:
        raise WireError(f"not a read batch: expected schema {BATCH_SCHEMA!r}")
    if body.get("device_id") != device_id:
        raise WireError(f"batch device_id {str(body.get('device_id'))[:MAX_TEXT]!r} is not {device_id!r}, "
                        "the device of the topic")
    reads = body.get("reads")
    if not isinstance(reads, list) or len(reads) > MAX_READS:
        raise WireError(f"batch lacks a 'reads' list of at most {MAX_READS}")
    batch = Batch(_uuid(body.get("batch_id"), "batch_id"), device_id, _timestamp(body.get("sent_at"), "sent_at", now))
    for item in reads:
        try:
            batch.reads.append(check_read(item, device_id, now))
        except WireError as err:
            batch.refused.append((str(err), item))
    return batch


@dataclass
class RecordBatch:
    """A checked batch of dispositions or BOLOs: good records, and why each other one was refused."""

    kind: str
    batch_id: str
    device_id: str
    records: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[str, Any]] = field(default_factory=list)


def _note(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NOTE or not value.replace("\n", " ").isprintable():
        raise WireError(f"{name} is not printable text of at most {MAX_NOTE} characters")
    return value


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise WireError(f"{name} {str(value)[:MAX_TEXT]!r} is not one of {', '.join(allowed)}")
    return value


def _expiry(value: Any, name: str) -> str:
    """An expiry may lie in the future (unlike the other timestamps)."""
    try:
        ts = parse_iso(_text(value, name))
    except ValueError:
        raise WireError(f"{name} is not a UTC timestamp like 2026-01-31T12:00:00.000000Z") from None
    if ts < EARLIEST:
        raise WireError(f"{name} {value} is before 2000")
    return value


def _check_record(kind: str, item: Any, now: datetime) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise WireError(f"a {kind} record is not a JSON object")
    if kind == "dispositions":
        return {"id": _uuid(item.get("id"), "id"), "alert_id": _text(item.get("alert_id"), "alert_id"),
                "disposition": _choice(item.get("disposition"), "disposition", tuple(d.value for d in Disposition)),
                "note": _note(item.get("note", ""), "note"), "user": _text(item.get("user"), "user"),
                "ts": _timestamp(item.get("ts"), "ts", now)}
    return {"id": _uuid(item.get("id"), "id"), "plate": _text(item.get("plate"), "plate", MAX_PLATE),
            "category": _text(item.get("category"), "category"),
            "case_number": _text(item.get("case_number"), "case_number"), "note": _note(item.get("note", ""), "note"),
            "priority": _number(item.get("priority"), "priority", 1, 9, True),
            "expires_at": _expiry(item.get("expires_at"), "expires_at"),
            "entered_by": _text(item.get("entered_by"), "entered_by"),
            "entered_at": _timestamp(item.get("entered_at"), "entered_at", now)}


def check_records(kind: str, payload: bytes, device_id: str, now: datetime) -> RecordBatch:
    """A batch of officers' dispositions or BOLOs from ``device_id``; bad records are refused one by one."""
    schema, _ = RECORD_KINDS[kind]
    if len(payload) > MAX_MESSAGE_BYTES:
        raise WireError(f"{kind} batch of {len(payload)} bytes (at most {MAX_MESSAGE_BYTES})")
    body = parse_json(payload)
    if not isinstance(body, dict) or body.get("schema") != schema:
        raise WireError(f"not a {kind} batch: expected schema {schema!r}")
    if body.get("device_id") != device_id:
        raise WireError(f"batch device_id {str(body.get('device_id'))[:MAX_TEXT]!r} is not {device_id!r}, "
                        "the device of the topic")
    items = body.get(kind)
    if not isinstance(items, list) or len(items) > MAX_RECORDS:
        raise WireError(f"batch lacks a {kind!r} list of at most {MAX_RECORDS}")
    _timestamp(body.get("sent_at"), "sent_at", now)
    batch = RecordBatch(kind, _uuid(body.get("batch_id"), "batch_id"), device_id)
    for item in items:
        try:
            batch.records.append(_check_record(kind, item, now))
        except WireError as err:
            batch.refused.append((str(err), item))
    return batch


def check_message(kind: str, payload: bytes, device_id: str) -> str:
    """An alert, status or heartbeat: a JSON object of at most ``MAX_MESSAGE_BYTES`` for ``device_id``,
    returned as its text."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise WireError(f"{kind} message of {len(payload)} bytes (at most {MAX_MESSAGE_BYTES})")
    body = parse_json(payload)
    if not isinstance(body, dict):
        raise WireError(f"{kind} message is not a JSON object")
    if body.get("device_id") not in (None, device_id):
        raise WireError(f"{kind} device_id is not {device_id!r}, the device of the topic")
    if kind == "status" and body.get("state") not in ("online", "offline"):
        raise WireError("status state is not 'online' or 'offline'")
    return payload.decode("utf-8")


def check_device(device_id: str) -> str:
    """The device of a topic, as a receiver will store it."""
    return _text(device_id, "the topic's device id")
