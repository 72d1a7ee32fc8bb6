"""Merge repeated sightings of one plate into one read. Pure logic, no I/O.

A *track* collects the sightings of one plate during one pass of a vehicle.
A sighting joins an open track when its text is within ``max_edits`` of the
track's best text (OCR flickers by a character between frames). A track closes
when its plate has not been seen for ``gap_s`` and yields its best-confidence
sighting. A plate seen again within ``reread_window_s`` after its track closed
is a re-read of the same pass (a car stopped at a light) and makes no new read.
Times are the source's own clock, so replays and tests are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from alprd.plates import edit_distance

T = TypeVar("T")


@dataclass
class Observation(Generic[T]):
    text: str
    confidence: float
    t: float
    item: T  # whatever the caller needs back with the best sighting


@dataclass
class Track(Generic[T]):
    best: Observation[T]
    first_t: float
    last_t: float
    frames: int = 1
    texts: dict[str, int] = field(default_factory=dict)

    def add(self, obs: Observation[T]) -> None:
        self.frames += 1
        self.last_t = max(self.last_t, obs.t)
        self.texts[obs.text] = self.texts.get(obs.text, 0) + 1
        if obs.confidence > self.best.confidence:
            self.best = obs


class Deduper(Generic[T]):
    def __init__(self, gap_s: float, reread_window_s: float, max_edits: int = 1):
        self.gap_s = gap_s
        self.reread_window_s = reread_window_s
        self.max_edits = max_edits
        self.open: list[Track[T]] = []
        self._recent: dict[str, float] = {}  # closed plate -> last time seen
        self.rereads = 0

    def _similar(self, a: str, b: str) -> bool:
        return edit_distance(a, b, self.max_edits) <= self.max_edits

    def feed(self, observations: list[Observation[T]], t: float) -> list[Track[T]]:
        """Add one frame's sightings (taken at time ``t``); returns tracks that closed."""
        closed = self.expire(t)
        for obs in observations:
            track = next((tr for tr in self.open if self._similar(tr.best.text, obs.text)), None)
            if track is not None:
                track.add(obs)
                continue
            recent = next((p for p in self._recent if self._similar(p, obs.text)), None)
            if recent is not None:
                self._recent[recent] = obs.t
                self.rereads += 1
                continue
            self.open.append(Track(obs, obs.t, obs.t, 1, {obs.text: 1}))
        return closed

    def expire(self, t: float) -> list[Track[T]]:
        """Close tracks not seen for ``gap_s`` before ``t``; forget old re-read memory."""
        closed = [tr for tr in self.open if t - tr.last_t > self.gap_s]
        if closed:
            self.open = [tr for tr in self.open if t - tr.last_t <= self.gap_s]
            for tr in closed:
                self._recent[tr.best.text] = tr.last_t
        self._recent = {p: s for p, s in self._recent.items() if t - s <= self.reread_window_s}
        return closed

    def flush(self) -> list[Track[T]]:
        """Close every open track (shutdown): nothing seen is lost."""
        closed, self.open = self.open, []
        for tr in closed:
            self._recent[tr.best.text] = tr.last_t
        return closed
