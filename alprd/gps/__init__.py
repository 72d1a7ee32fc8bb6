"""Position for each read: a GPS fix from an NMEA receiver, or a pole site's fixed position."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from alprd.config import GpsConfig


@dataclass(frozen=True)
class Fix:
    """A position and when it was measured (``time.monotonic()`` seconds)."""

    lat: float
    lon: float
    measured_at: float
    utc: str | None = None
    speed_kmh: float | None = None
    heading_deg: float | None = None
    quality: int | None = None
    satellites: int | None = None
    hdop: float | None = None

    def is_stale(self, max_age_s: float, now: float | None = None) -> bool:
        return self.age_s(now) > max_age_s

    def age_s(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.measured_at

    def describe(self, max_age_s: float, now: float | None = None) -> dict[str, Any]:
        """The fix for a status report; a stale fix says so and how old it is."""
        age = self.age_s(now)
        return {
            "state": "stale" if age > max_age_s else "current",
            "age_s": round(age, 1), "lat": round(self.lat, 6), "lon": round(self.lon, 6),
            "utc": self.utc, "speed_kmh": self.speed_kmh, "heading_deg": self.heading_deg,
            "quality": self.quality, "satellites": self.satellites, "hdop": self.hdop,
        }


class FixedPosition:
    """A pole-mounted site: its surveyed position never goes stale."""

    def __init__(self, cfg: GpsConfig):
        assert cfg.latitude is not None and cfg.longitude is not None
        self._lat, self._lon = cfg.latitude, cfg.longitude

    def current(self) -> Fix:
        return Fix(self._lat, self._lon, measured_at=time.monotonic(), quality=None)

    def status(self) -> dict[str, Any]:
        return {"mode": "fixed", "fix": self.current().describe(float("inf"))}
