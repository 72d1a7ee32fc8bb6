"""NMEA 0183 parsing without I/O: bytes in, sentences out, a :class:`~alprd.gps.Fix` kept.

Receivers send ``$..*hh\\r\\n`` lines. A serial link cut mid-line, a wrong baud
rate or a noisy cable give partial or corrupt lines; they are counted as garbage
and skipped, never raised. Only sentences with a valid checksum are used, and
only values that can be true: a checksum does not stop a receiver's firmware
from sending a position without its hemisphere (which would put the car at a
wrong place) or a speed of ``nan``; such sentences are counted by reason.
RMC gives position, speed, course and date; GGA gives position, fix quality,
satellites and HDOP; VTG gives speed and course.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

import pynmea2

from alprd.gps import Fix
from alprd.records import iso

MAX_SENTENCE = 120  # the standard says 82; some receivers run a little longer
KNOTS_TO_KMH = 1.852
USED_TYPES = ("RMC", "GGA", "VTG")
_DEGREES_MINUTES = re.compile(r"(\d{1,3})(\d\d(?:\.\d+)?)")  # ddmm.mmmm, dddmm.mmmm


class BadSentence(ValueError):
    """A sentence whose values cannot be true; the message is the reason it is counted under."""


class LineAssembler:
    """Cuts a byte stream into candidate sentences, however the reads split it.

    A ``$`` always starts a new sentence, so the remains of a line cut by an
    unplug are dropped (and counted) rather than glued to the next one.
    """

    def __init__(self, max_len: int = MAX_SENTENCE):
        self.max_len = max_len
        self._buf = bytearray()
        self._skipping = False  # inside an overlong line: ignore until "$" or end of line
        self.dropped = 0  # partial or overlong pieces thrown away

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for byte in data:
            if byte == 0x24:  # "$"
                if self._buf.strip():
                    self.dropped += 1
                self._buf, self._skipping = bytearray(b"$"), False
            elif byte in (0x0A, 0x0D):  # end of line
                if self._buf.strip():
                    lines.append(self._buf.decode("ascii", "replace"))
                self._buf.clear()
                self._skipping = False
            elif self._skipping:
                continue
            elif len(self._buf) < self.max_len:
                self._buf.append(byte)
            else:
                self.dropped += 1
                self._buf.clear()
                self._skipping = True
        return lines

    def reset(self) -> None:
        """Forget a half-received line (the port was closed)."""
        if self._buf.strip():
            self.dropped += 1
        self._buf.clear()


@dataclass
class NmeaCounters:
    sentences: int = 0  # valid sentences of the types we use
    other: int = 0  # valid sentences of other types (GSV, GSA...): ignored
    garbage: int = 0  # bad checksum, not NMEA, unparsable fields, impossible values, partial lines
    by_type: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # garbage by reason (a few fixed words)


class NmeaTracker:
    """Keeps the latest fix from a stream of NMEA lines.

    ``now`` is ``time.monotonic()`` seconds at reception; a fix records it as
    ``measured_at`` so that callers can tell a stale fix from a current one.
    A lost fix (RMC status V, GGA quality 0) does not erase the last position:
    it simply stops being renewed and goes stale.
    """

    def __init__(self) -> None:
        self.fix: Fix | None = None
        self.counters = NmeaCounters()
        self.has_fix = False  # the receiver's own view, from the latest RMC/GGA
        self.quality: int | None = None
        self.satellites: int | None = None
        self.hdop: float | None = None
        self.speed_kmh: float | None = None
        self.heading_deg: float | None = None
        self.last_sentence_at: float | None = None
        self._date: date | None = None

    def feed_line(self, line: str, now: float) -> bool:
        """Use one line; returns False (and counts it) when it is garbage."""
        try:
            msg = pynmea2.parse(line.strip(), check=True)
            kind = msg.sentence_type
            if kind not in USED_TYPES:
                self.counters.other += 1
                return True
            getattr(self, f"_on_{kind.lower()}")(msg, now)
        except BadSentence as err:
            return self._reject(str(err))
        except pynmea2.ChecksumError:
            return self._reject("bad checksum")
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError, IndexError):
            return self._reject("unparsable")
        self.counters.sentences += 1
        self.counters.by_type[kind] = self.counters.by_type.get(kind, 0) + 1
        self.last_sentence_at = now
        return True

    def _reject(self, reason: str) -> bool:
        self.counters.garbage += 1
        self.counters.rejected[reason] = self.counters.rejected.get(reason, 0) + 1
        return False

    # -- sentences ------------------------------------------------------------
    def _on_rmc(self, msg, now: float) -> None:
        valid = msg.status == "A"
        knots = _float(msg.spd_over_grnd, "speed", 0)
        course = _float(msg.true_course, "course", 0, 360)
        if valid:
            self._date = msg.datestamp or self._date
            self.speed_kmh = None if knots is None else round(knots * KNOTS_TO_KMH, 2)
            self.heading_deg = course
            self._position(msg, now, msg.timestamp)
        self.has_fix = valid

    def _on_gga(self, msg, now: float) -> None:
        quality = int(msg.gps_qual or 0)
        self.quality = quality
        self.satellites = int(msg.num_sats) if msg.num_sats else None
        self.hdop = _float(msg.horizontal_dil, "hdop", 0)
        if quality > 0:
            self._position(msg, now, msg.timestamp)
        self.has_fix = quality > 0

    def _on_vtg(self, msg, now: float) -> None:
        kmh = _float(msg.spd_over_grnd_kmph, "speed", 0)
        track = _float(msg.true_track, "course", 0, 360)
        if kmh is not None:
            self.speed_kmh, self.heading_deg = kmh, track

    def _position(self, msg, now: float, clock: time | None) -> None:
        if not msg.lat or not msg.lon:
            raise BadSentence("no position in a valid fix")
        lat = coordinate(msg.lat, msg.lat_dir, "latitude")
        lon = coordinate(msg.lon, msg.lon_dir, "longitude")
        utc = None
        if clock is not None and self._date is not None:
            utc = iso(datetime.combine(self._date, clock.replace(tzinfo=None), tzinfo=UTC))
        self.fix = Fix(lat, lon, measured_at=now, utc=utc, speed_kmh=self.speed_kmh,
                       heading_deg=self.heading_deg, quality=self.quality,
                       satellites=self.satellites, hdop=self.hdop)


_AXES = {"latitude": ("N", "S", 90), "longitude": ("E", "W", 180)}


def coordinate(dm: str, hemisphere: str, axis: str) -> float:
    """Signed degrees from NMEA ``dddmm.mmmm`` and its hemisphere; BadSentence if impossible.

    pynmea2 reads a missing hemisphere as 0 degrees; here it rejects the sentence.
    """
    positive, negative, limit = _AXES[axis]
    if hemisphere not in (positive, negative):
        raise BadSentence(f"{axis} without hemisphere")
    parts = _DEGREES_MINUTES.fullmatch(dm)
    if parts is None:
        raise BadSentence(f"{axis} not ddmm.mmmm")
    degrees, minutes = int(parts[1]), float(parts[2])
    if minutes >= 60:
        raise BadSentence(f"{axis} minutes >= 60")
    value = degrees + minutes / 60
    if value > limit:
        raise BadSentence(f"{axis} beyond {limit}")
    return value if hemisphere == positive else -value


def _float(text: str | float | None, what: str, lo: float, hi: float = math.inf) -> float | None:
    """An NMEA numeric field; empty means unknown, unparsable or impossible is garbage."""
    if text is None or text == "":
        return None
    value = float(text)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise BadSentence(f"{what} out of range")
    return value
