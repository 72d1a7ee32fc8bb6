"""The records every layer shares: the plate read, its field list, and the one time format.

:class:`Read` is the single place a read's field is declared: the store's rows,
the wire format (``alprd.uplink.wire``) and the receiver's table
(``alprd.uplink.ingest``) are derived from it. In SQLite the list fields
(``char_confidences``, ``box``) are JSON text and ``gps_stale`` is 0/1;
:func:`to_columns` and :func:`from_columns` are the only conversions.
A new field is added here, with a store migration that adds its column.
"""

from __future__ import annotations

import json
import types
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, get_args, get_origin, get_type_hints

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    """UTC timestamp as sortable ISO-8601 text, the one time format in the database."""
    return datetime.now(UTC).strftime(TIME_FORMAT)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime(TIME_FORMAT)


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


@dataclass
class Read:
    """One plate read: the best sighting of a plate within the re-read window."""

    plate: str
    confidence: float
    char_confidences: list[float]
    camera_id: str
    device_id: str
    ts: str = field(default_factory=utc_now)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    box: list[int] | None = None
    frames: int = 1
    lat: float | None = None
    lon: float | None = None
    speed_kmh: float | None = None
    heading_deg: float | None = None
    gps_fix_ts: str | None = None
    gps_stale: bool = False
    crop_jpeg: bytes | None = None
    # the OCR's likeliest texts for this pass, best first, with their scores (0..1); the plate is first
    candidates: list[str] = field(default_factory=list)
    candidate_scores: list[float] = field(default_factory=list)
    region: str | None = None  # the configured plate region whose syntax the plate fits (vision.regions)

    def to_row(self) -> dict[str, Any]:
        """The ``reads`` row for a new read (not uploaded yet)."""
        values = {f: getattr(self, f) for f in READ_FIELDS}
        values["char_confidences"] = [round(c, 4) for c in self.char_confidences]
        values["candidate_scores"] = [round(c, 4) for c in self.candidate_scores]
        return {**to_columns(values), "uploaded_at": None}


def _field_type(hint: Any) -> Any:
    """``X`` for ``X | None``."""
    if isinstance(hint, types.UnionType):
        return next(a for a in get_args(hint) if a is not type(None))
    return hint


_TYPES = {name: _field_type(hint) for name, hint in get_type_hints(Read).items()}
READ_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Read))
LIST_FIELDS = tuple(name for name, t in _TYPES.items() if get_origin(t) is list)
_EMPTY_LISTS = frozenset(f.name for f in fields(Read) if f.default_factory is list)
# The SQLite column type of each field: lists as JSON text, bools as 0/1.
READ_COLUMNS: dict[str, type] = {name: str if name in LIST_FIELDS else int if t is bool else t
                                 for name, t in _TYPES.items()}


def to_columns(values: dict[str, Any]) -> dict[str, Any]:
    """A read's field values as ``reads`` columns: lists as JSON text, ``gps_stale`` as 0/1."""
    row = {k: values.get(k) for k in READ_FIELDS}
    for key in LIST_FIELDS:
        if row[key] is not None:
            row[key] = json.dumps(list(row[key]))
    row["gps_stale"] = int(bool(row["gps_stale"]))
    return row


def from_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A ``reads`` row's fields as typed values: lists, ``gps_stale`` as a bool."""
    values = {k: row.get(k) for k in READ_FIELDS}
    for key in LIST_FIELDS:
        if isinstance(values[key], str):
            values[key] = json.loads(values[key])
        elif values[key] is None and key in _EMPTY_LISTS:  # a row from before the field existed
            values[key] = []
    values["gps_stale"] = bool(values["gps_stale"])
    return values
