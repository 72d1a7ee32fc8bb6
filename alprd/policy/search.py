"""Search stored reads by full or partial plate, time, camera and area.

A partial plate uses ``?`` for one unknown character and ``*`` for any run of
them. How it is answered depends on the pattern (see :func:`plate_strategy`):
an exact plate or a known start uses the plate index; a pattern with three or
more known characters in a row anywhere goes through the trigram FTS5 index
(``reads_plate_fts``; on PostgreSQL the trigram GIN index serves ``GLOB`` itself);
anything vaguer scans the plate index. Every strategy
ends with the same ``plate GLOB`` test, so they differ only in speed. A read
whose OCR candidates (``read_candidates``) match is found as well: a plate
misread at the top is still found by its right text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from alprd.records import from_columns
from alprd.store import Store

Strategy = Literal["exact", "prefix", "trigram", "scan"]
_PATTERN_CHARS = re.compile(r"^[A-Z0-9?*]+$")
_LITERAL_RUN = re.compile(r"[A-Z0-9]+")
MAX_RESULTS = 10_000


class SearchError(ValueError):
    """A search that cannot be run as asked; the message says how to fix it."""


def plate_pattern(text: str) -> str:
    """Upper-case, drop spaces and dashes; only A-Z, 0-9, ``?`` and ``*`` remain allowed."""
    pattern = re.sub(r"[\s\-.]", "", text.upper())
    if not pattern or not _PATTERN_CHARS.match(pattern):
        raise SearchError(f"plate pattern {text!r}: use letters, digits, ? (one character) and * (any run)")
    if not pattern.strip("*?"):
        raise SearchError(f"plate pattern {text!r} names no character; leave --plate out to search by time/area")
    return pattern


def plate_strategy(pattern: str) -> Strategy:
    """Which index answers a (normalised) plate pattern fastest."""
    if not set(pattern) & set("?*"):
        return "exact"
    prefix = len(_LITERAL_RUN.match(pattern)[0]) if _LITERAL_RUN.match(pattern) else 0
    longest = max((len(m) for m in _LITERAL_RUN.findall(pattern)), default=0)
    if prefix >= 3 or (prefix and longest < 3):
        return "prefix"
    return "trigram" if longest >= 3 else "scan"


@dataclass(frozen=True)
class SearchQuery:
    plate: str | None = None
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive
    camera: str | None = None
    device: str | None = None  # the unit (at the department, whose data is every unit's)
    box: tuple[float, float, float, float] | None = None  # lat_min, lon_min, lat_max, lon_max
    limit: int = 1000

    def __post_init__(self) -> None:
        if self.plate is None and self.since is None and self.until is None and self.box is None:
            raise SearchError("a search needs a plate pattern, a time range (--from/--to) or an area (--box)")
        if self.since and self.until and self.since >= self.until:
            raise SearchError(f"time range empty: --from {self.since} is not before --to {self.until}")
        if self.box:
            lat0, lon0, lat1, lon1 = self.box
            if not (-90 <= lat0 < lat1 <= 90 and -180 <= lon0 < lon1 <= 180):
                raise SearchError("--box is LAT_MIN,LON_MIN,LAT_MAX,LON_MAX with min < max")
        if not 1 <= self.limit <= MAX_RESULTS:
            raise SearchError(f"--limit must be 1..{MAX_RESULTS}")

    def as_dict(self) -> dict[str, Any]:
        """The query as written to the access log."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def build_sql(q: SearchQuery, columns: str = "*", fts: bool = True) -> tuple[str, dict[str, Any]]:
    """SQL and parameters for a query (pure), newest reads first; ``fts``: SQLite's trigram table exists."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": q.limit}
    if q.plate is not None:
        pattern = plate_pattern(q.plate)
        params["plate"] = pattern
        strategy = plate_strategy(pattern)
        # a read whose OCR candidates include the plate is found too (its top text was a misread); a UNION
        # of two index look-ups, which both databases plan as such (an OR across them is a full scan)
        if strategy == "exact":
            on_plate = "plate = :plate"
            on_candidates = "plate = :plate"
        else:
            on_plate = on_candidates = "plate GLOB :plate"
            if strategy == "trigram" and fts:
                on_plate += " AND seq IN (SELECT rowid FROM reads_plate_fts WHERE plate GLOB :plate)"
        where.append(f"id IN (SELECT id FROM reads WHERE {on_plate} "
                     f"UNION SELECT read_id FROM read_candidates WHERE {on_candidates})")
    if q.since:
        where.append("ts >= :since")
        params["since"] = q.since
    if q.until:
        where.append("ts < :until")
        params["until"] = q.until
    if q.camera:
        where.append("camera_id = :camera")
        params["camera"] = q.camera
    if q.device:
        where.append("device_id = :device")
        params["device"] = q.device
    if q.box:
        where.append("lat BETWEEN :lat0 AND :lat1 AND lon BETWEEN :lon0 AND :lon1")
        params.update(zip(("lat0", "lon0", "lat1", "lon1"), q.box, strict=True))
    sql = f"SELECT {columns} FROM reads WHERE {' AND '.join(where)} ORDER BY ts DESC LIMIT :limit"
    return sql, params


def search(store: Store, q: SearchQuery) -> list[dict[str, Any]]:
    """The matching reads (with their crops), newest first, at most ``q.limit``."""
    sql, params = build_sql(q, fts=store.dialect == "sqlite")
    return store.query(sql, params)


def public_read(read: dict[str, Any], crop_file: str | None) -> dict[str, Any]:
    """A read as shown or exported: typed values (lists, not JSON text), the crop as a file name."""
    typed = from_columns(read)
    row = {k: typed.get(k, v) for k, v in read.items() if k not in ("crop_jpeg", "seq")}
    row["crop_file"] = crop_file
    return row
