"""Merge repeated sightings of one plate into one read. Pure logic, no I/O.

A *track* collects the sightings of one plate during one pass of a vehicle.
A sighting joins an open track when its text is within ``max_edits`` of a text
the track has seen (OCR flickers by a character between frames). A track closes
when its plate has not been seen for ``gap_s``; its text is the sightings *fused*
character by character (:meth:`Track.fused`): one frame's misread character is
outvoted by the frames that read it right, which the single best frame cannot do.
The best-confidence sighting gives the crop and box. A plate seen again within
``reread_window_s`` after its track closed is a re-read of the same pass (a car
stopped at a light) and makes no new read.
Times are the source's own clock, so replays and tests are deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from alprd.plates import edit_distance

T = TypeVar("T")
MAX_VOTES = 32  # sightings a track keeps for fusion (the most confident): memory stays bounded


@dataclass
class Observation(Generic[T]):
    text: str
    confidence: float
    t: float
    item: T  # whatever the caller needs back with the best sighting
    char_confidences: tuple[float, ...] = ()
    candidates: tuple[tuple[str, float], ...] = ()  # the OCR's likeliest texts with their scores


@dataclass
class Track(Generic[T]):
    best: Observation[T]
    first_t: float
    last_t: float
    frames: int = 1
    texts: dict[str, int] = field(default_factory=dict)
    votes: list[Observation[T]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.votes:
            self.votes = [self.best]

    def add(self, obs: Observation[T]) -> None:
        self.frames += 1
        self.last_t = max(self.last_t, obs.t)
        self.texts[obs.text] = self.texts.get(obs.text, 0) + 1
        if obs.confidence > self.best.confidence:
            self.best = obs
        self.votes.append(obs)
        if len(self.votes) > MAX_VOTES:
            self.votes.remove(min(self.votes, key=lambda o: o.confidence))

    def fused(self) -> tuple[str, float, tuple[float, ...]]:
        """(text, confidence, per-character confidences) voted over the track's sightings.

        The length is the one with the most confidence behind it; then each position goes
        to the character with the most character confidence there. A character's fused
        confidence is its share of the votes times its most confident voter's, and the
        plate's is the lowest of them: a unanimous pass keeps its best sighting's
        confidence, a split vote shows as a lower one.
        """
        weight: dict[int, float] = defaultdict(float)
        for o in self.votes:
            weight[len(o.text)] += o.confidence
        length = max(weight, key=lambda n: (weight[n], n == len(self.best.text)))
        voters = [o for o in self.votes if len(o.text) == length]
        text, confs = [], []
        for i in range(length):
            score: dict[str, list[float]] = defaultdict(list)
            for o in voters:
                score[o.text[i]].append(o.char_confidences[i] if len(o.char_confidences) == length
                                        else o.confidence)
            total = sum(sum(v) for v in score.values()) or 1.0
            char = max(score, key=lambda c: sum(score[c]))
            text.append(char)
            confs.append(sum(score[char]) / total * max(score[char]))
        return "".join(text), min(confs, default=0.0), tuple(confs)

    def candidates(self, top: int) -> list[tuple[str, float]]:
        """The pass's likeliest texts, the fused one first: each sighting's candidate
        scores (or its own text at its confidence) averaged over the sightings."""
        score: dict[str, float] = defaultdict(float)
        for o in self.votes:
            for text, p in o.candidates or ((o.text, o.confidence),):
                score[text] += p / len(self.votes)
        fused = self.fused()[0]
        ranked = sorted((t for t in score if t != fused), key=lambda t: -score[t])
        return [(fused, round(score.get(fused, 0.0), 4))] + [(t, round(score[t], 4)) for t in ranked[:top - 1]]


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
            track = next((tr for tr in self.open if any(self._similar(t, obs.text) for t in tr.texts)), None)
            if track is not None:
                track.add(obs)
                continue
            recent = next((p for p in self._recent if self._similar(p, obs.text)), None)
            if recent is not None:
                self._recent[recent] = obs.t
                self.rereads += 1
                continue
            self.open.append(Track(obs, obs.t, obs.t, 1, {obs.text: 1}, [obs]))
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
