"""What the screen shows, shaped from rows and status (pure functions: no I/O, no aiohttp)."""

from __future__ import annotations

import base64
import difflib
import json
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from alprd.records import from_columns, parse_iso
from alprd.uplink.pacing import backlog_severity

# How each match kind is worded for an officer
MATCH_WORDS = {
    "exact": "exact",
    "confusable": "look-alike (characters OCR confuses)",
    "near": "partial (one character more or less)",
    "partial": "partial plate (wildcard entry)",
    "candidate": "look-alike (another reading of the plate)",
}


def local_time(ts: str | None, zone: ZoneInfo | None) -> str:
    """A stored UTC time in the unit's time zone (the system's when ``zone`` is None)."""
    if not ts:
        return "-"
    when = parse_iso(ts)
    local = when.astimezone(zone) if zone else when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def data_uri(jpeg: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") if jpeg else None


def read_view(row: Mapping[str, Any], zone: ZoneInfo | None) -> dict[str, Any]:
    """A ``reads`` row for the live view and search results: local time, GPS, candidates, crop."""
    r = from_columns(dict(row))
    gps = None
    if r["lat"] is not None and r["lon"] is not None:
        gps = f"{r['lat']:.5f}, {r['lon']:.5f}" + (" (stale)" if r["gps_stale"] else "")
    return {
        "id": r["id"], "plate": r["plate"], "confidence": round(r["confidence"], 2),
        "candidates": [c for c in r["candidates"] if c != r["plate"]], "time": local_time(r["ts"], zone),
        "ts": r["ts"], "gps": gps, "camera": r["camera_id"], "crop": data_uri(row.get("crop_jpeg")),
    }


def differences(plate: str, pattern: str) -> dict[str, Any]:
    """Which characters of the read differ from the list's entry: ``marks`` has one flag per plate
    character (True = not as listed), ``text`` says it in words ("" when they are the same)."""
    marks = [False] * len(plate)
    words = []
    matcher = difflib.SequenceMatcher(None, plate, pattern, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        listed = pattern[j1:j2]
        if listed and set(listed) <= {"?", "*"}:  # a wildcard of a partial entry stands for anything
            continue
        for i in range(i1, i2):
            marks[i] = True
        read = plate[i1:i2]
        if op == "replace":
            words.append(f"read {read} where the list has {listed}")
        elif op == "delete":
            words.append(f"read {read}, not on the list")
        else:
            words.append(f"the list has {listed}, not read")
    return {"marks": marks, "text": "; ".join(words)}


def alert_view(row: Mapping[str, Any], read: Mapping[str, Any] | None, context: bytes | None,
               history: list[dict[str, Any]], zone: ZoneInfo | None) -> dict[str, Any]:
    """An alert as it takes the screen: what was read, what it matched, and the required warning."""
    payload = json.loads(row["payload"]) if row.get("payload") else {}
    match = payload.get("match", {})
    crop = read.get("crop_jpeg") if read else None
    if crop is None and payload.get("crop_jpeg_b64"):
        crop = base64.b64decode(payload["crop_jpeg_b64"])
    return {
        "id": row["id"], "plate": row["plate"], "pattern": row["pattern"], "time": local_time(row["ts"], zone),
        "category": row["category"], "priority": row["priority"], "case_number": row["case_number"] or "",
        "note": row["note"] or "", "expires": match.get("expires") or "no expiry", "state": match.get("state") or "",
        "source": match.get("source") or "", "match_kind": row["match_kind"],
        "match_words": MATCH_WORDS.get(row["match_kind"], row["match_kind"]),
        "differences": differences(row["plate"], row["pattern"]),
        "confidence": payload.get("read_confidence"), "camera": payload.get("camera_id"),
        "gps": (f"{payload['gps']['lat']:.5f}, {payload['gps']['lon']:.5f}" if payload.get("gps") else None),
        "crop": data_uri(crop), "context": data_uri(context), "verify": payload.get("verify", ""),
        "disposition": row.get("disposition"),
        "history": [{**h, "time": local_time(h["ts"], zone)} for h in history],
    }


def alert_line(row: Mapping[str, Any], zone: ZoneInfo | None) -> dict[str, Any]:
    """An alert in the list (no pictures)."""
    return {"id": row["id"], "plate": row["plate"], "pattern": row["pattern"], "category": row["category"],
            "priority": row["priority"], "match_kind": row["match_kind"], "time": local_time(row["ts"], zone),
            "disposition": row.get("disposition") or "open"}


def _age(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def health(status: Mapping[str, Any], transfer_days: tuple[float, float] = (25.0, 30.0)) -> list[dict[str, str]]:
    """The health strip: camera, GPS, broker, backlog and transfer, hotlist; each with a level
    (ok / warn / bad) so the page can colour it. ``transfer_days``: the backlog's warning and
    critical ages (``uplink.backlog_warn_days``, ``backlog_critical_days``)."""
    p, cam = status.get("pipeline", {}), status.get("camera", {})
    items = []
    fps = cam.get("fps", p.get("fps", 0))
    lost = cam.get("state") == "reconnecting"
    items.append({"name": "camera", "value": "lost" if lost else f"{fps} fps", "level": "bad" if lost else "ok"})
    gps = status.get("gps")
    if gps is None:
        items.append({"name": "GPS", "value": "none", "level": "warn"})
    else:
        fix = gps.get("fix")
        state = fix["state"] if fix else "no fix"
        items.append({"name": "GPS", "value": state, "level": "ok" if state == "current" else "warn"})
    up = status.get("uplink")
    if up is None:  # no uplink: the backlog only grows, and the transfer window still counts
        items.append({"name": "broker", "value": "uplink off", "level": "warn"})
        backlog = status.get("storage", {}).get("backlog", {})
        count, age_h = backlog.get("reads", 0), backlog.get("oldest_age_h")
        transfer = backlog_severity(None if age_h is None else age_h * 3600, *transfer_days)
    else:
        items.append({"name": "broker", "value": "connected" if up.get("connected") else "offline",
                      "level": "ok" if up.get("connected") else "bad"})
        count, days, transfer = up.get("backlog", 0), up.get("oldest_age_days"), up.get("transfer", "ok")
        age_h = None if days is None else days * 24
    items.append({"name": "backlog", "value": f"{count} reads, oldest {_age(age_h)}; 30-day transfer {transfer}",
                  "level": {"ok": "ok", "warning": "warn"}.get(transfer, "bad")})
    h = status.get("hotlist", {})
    items.append({"name": "hotlist", "value": f"v{h.get('version', 0)}, {_age(h.get('age_h'))} old"
                  if h.get("updated_at") else "none loaded",
                  "level": "ok" if h.get("severity") == "ok" else "warn"})
    return items
