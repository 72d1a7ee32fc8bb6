"""What travels over MQTT: topic names and the read-batch format, both directions.

Topics, under ``uplink.topic_prefix`` (default ``alprd``) and the device id:

- ``<prefix>/<device>/reads``      gzip-compressed JSON batch of reads, QoS 1
- ``<prefix>/<device>/alerts``     one hotlist alert (JSON, as stored), QoS 1
- ``<prefix>/<device>/status``     retained birth / last-will: online or offline, QoS 1
- ``<prefix>/<device>/heartbeat``  retained periodic health, QoS 0
- ``<prefix>/<device>/dispositions`` officers' alert dispositions (JSON batch), QoS 1
- ``<prefix>/<device>/bolos``      officer-entered BOLOs (JSON batch), QoS 1
- ``<prefix>/<device>/receipt``    receiver -> unit: a batch or alert is committed, QoS 1

A read batch is ``{"schema": "alprd.reads/1", "batch_id", "device_id",
"sent_at", "reads": [...]}``; each read carries its UUID (so a re-sent batch is
harmless), the fields of :class:`~alprd.records.Read` (lists as JSON arrays)
and its plate crop as base64 JPEG. What a receiver accepts is checked in
:mod:`alprd.uplink.schema`.

A disposition batch is ``{"schema": "alprd.dispositions/1", "batch_id", "device_id", "sent_at",
"dispositions": [{"id", "alert_id", "disposition", "note", "user", "ts"}]}`` (every entry of an
alert's history, each once); a BOLO batch is ``{"schema": "alprd.bolos/1", ..., "bolos": [{"id",
"plate", "category", "case_number", "note", "priority", "expires_at", "entered_by", "entered_at"}]}``.

A receipt is ``{"schema": "alprd.receipt/1", "kind": "reads" | "alerts" | "dispositions" | "bolos",
"batch_id", "count", "refused", "committed_at"}``, published by the receiver
after its database commit; for an alert the batch id is the alert id. Only a
receipt makes a read "uploaded" on the unit: a broker's PUBACK says nothing
about whether anybody stored it.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from alprd.records import from_columns, utc_now

BATCH_SCHEMA = "alprd.reads/1"
RECEIPT_SCHEMA = "alprd.receipt/1"
RECEIPT_MAX_BYTES = 1024
KINDS = ("reads", "alerts", "dispositions", "bolos", "status", "heartbeat", "receipt")
RECEIPT_KINDS = ("reads", "alerts", "dispositions", "bolos")
# The small JSON batches of officers' records: kind -> (schema, the fields of each record)
RECORD_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dispositions": ("alprd.dispositions/1", ("id", "alert_id", "disposition", "note", "user", "ts")),
    "bolos": ("alprd.bolos/1", ("id", "plate", "category", "case_number", "note", "priority", "expires_at",
                                "entered_by", "entered_at")),
}


class WireError(ValueError):
    """A message that is not what the topic promises; the text says what is wrong."""


def topic(prefix: str, device_id: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"{prefix}/{device_id}/{kind}"


def subscription(prefix: str, kind: str, shared_group: str | None = None) -> str:
    """Every device's ``kind`` topic; ``$share/<group>/...`` splits it over several receivers."""
    pattern = f"{prefix}/+/{kind}"
    return f"$share/{shared_group}/{pattern}" if shared_group else pattern


def device_of(prefix: str, topic_name: str) -> str:
    """The device id in ``<prefix>/<device>/<kind>``."""
    parts = topic_name[len(prefix) + 1:].split("/") if topic_name.startswith(prefix + "/") else []
    if len(parts) != 2 or not parts[0]:
        raise WireError(f"topic {topic_name!r} is not {prefix}/<device>/<kind>")
    return parts[0]


def read_to_wire(row: dict[str, Any]) -> dict[str, Any]:
    """A ``reads`` row as it goes on the wire (JSON values, crop as base64)."""
    out = from_columns(row)
    crop = out["crop_jpeg"]
    out["crop_jpeg"] = base64.b64encode(crop).decode("ascii") if crop else None
    return out


def encode_batch(device_id: str, rows: list[dict[str, Any]], batch_id: str | None = None,
                 sent_at: str | None = None) -> bytes:
    body = {
        "schema": BATCH_SCHEMA,
        "batch_id": batch_id or str(uuid.uuid4()),
        "device_id": device_id,
        "sent_at": sent_at or utc_now(),
        "reads": [read_to_wire(r) for r in rows],
    }
    return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), compresslevel=6, mtime=0)


def encode_records(kind: str, device_id: str, rows: list[dict[str, Any]], batch_id: str | None = None,
                   sent_at: str | None = None) -> bytes:
    """A batch of dispositions or BOLOs (plain JSON: they are small)."""
    schema, fields = RECORD_KINDS[kind]
    body = {"schema": schema, "batch_id": batch_id or str(uuid.uuid4()), "device_id": device_id,
            "sent_at": sent_at or utc_now(), kind: [{k: r[k] for k in fields} for r in rows]}
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Receipt:
    kind: str
    batch_id: str
    count: int
    refused: int
    committed_at: str


def encode_receipt(receipt: Receipt) -> bytes:
    return json.dumps({"schema": RECEIPT_SCHEMA, **asdict(receipt)}, separators=(",", ":")).encode()


def decode_receipt(payload: bytes) -> Receipt:
    """A receipt as the unit trusts it: small, well-typed, for a kind it sends."""
    if len(payload) > RECEIPT_MAX_BYTES:
        raise WireError(f"receipt of {len(payload)} bytes (at most {RECEIPT_MAX_BYTES})")
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise WireError(f"receipt is not JSON ({err})") from None
    if not isinstance(body, dict) or body.get("schema") != RECEIPT_SCHEMA:
        raise WireError(f"not a receipt: expected schema {RECEIPT_SCHEMA!r}")
    kind, batch_id, committed_at = body.get("kind"), body.get("batch_id"), body.get("committed_at")
    counts = [body.get("count"), body.get("refused", 0)]
    if kind not in RECEIPT_KINDS or not isinstance(batch_id, str) or not isinstance(committed_at, str):
        raise WireError("receipt lacks kind, batch_id or committed_at")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise WireError("receipt count or refused is not a count")
    return Receipt(kind, batch_id, counts[0], counts[1], committed_at)


def status_payload(device_id: str, state: str, reason: str = "", ts: str | None = None) -> bytes:
    """The retained ``status`` message: birth (online) or will / shutdown (offline)."""
    body = {"device_id": device_id, "state": state, "ts": ts}
    if reason:
        body["reason"] = reason
    return json.dumps(body).encode()
