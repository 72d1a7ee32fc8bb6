"""The daemon's live hotlist: the current index, its reload, and what a hit means.

The list itself lives in SQLite (changed by imports, the sync and officers'
commands, possibly in other processes). ``reload`` builds a new
:class:`PlateIndex` from a consistent snapshot off the event loop and swaps one
reference, so a match uses either the old list or the new one, never half.
A hit is then looked up in SQLite for its entries, so an entry removed
while the new index is being built cannot raise an alert.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alprd.config import HotlistConfig
from alprd.hotlist import repository
from alprd.hotlist.match import Hit, MatchKind, PlateIndex
from alprd.log import get_logger
from alprd.plates import normalize_plate
from alprd.records import parse_iso
from alprd.store import Store


@dataclass(frozen=True)
class Match:
    """One hotlist entry a read matched, and how."""

    kind: MatchKind
    entry: dict[str, Any]  # the hotlist row

    @property
    def rank(self) -> tuple[int, int]:
        return int(self.kind), int(self.entry.get("priority") or 9)


def rank_matches(matches: list[Match]) -> list[Match]:
    """Exact hits first, then confusable, near, partial; within a kind, most urgent first."""
    return sorted(matches, key=lambda m: m.rank)


class Hotlist:
    def __init__(self, store: Store, cfg: HotlistConfig):
        self.store = store
        self.cfg = cfg
        self.index = PlateIndex([])
        self.revision = -1
        self.loaded_at: str | None = None
        self._reload_lock = threading.Lock()
        self.log = get_logger("alprd.hotlist")

    def reload(self) -> bool:
        """Rebuild the index if the list changed since the last build; True if it did."""
        with self._reload_lock:
            if repository.meta(self.store).revision == self.revision:
                return False
            revision, version, patterns = repository.snapshot_patterns(self.store)
            index = PlateIndex(patterns, version)
            self.index, self.revision = index, revision  # the swap: one reference
            self.loaded_at = datetime.now(UTC).isoformat()
        self.log.info("hotlist_loaded", patterns=len(index), version=version, revision=revision)
        return True

    def match(self, plate: str, candidates: Sequence[str] = ()) -> list[Match]:
        """The entries a read plate matches, best first (empty for most reads).

        The read's other OCR candidates count only where one is *exactly* a listed
        plate (kind ``candidate``): a plate misread at the top still alerts, without
        the look-alike and partial matching of every alternative multiplying false hits.
        """
        plate = normalize_plate(plate)
        hits = self.index.match(plate)
        found = {h.pattern for h in hits}
        for alt in {normalize_plate(c) for c in candidates} - {plate, ""}:
            hits += [Hit(MatchKind.CANDIDATE, h.pattern) for h in self.index.match(alt)
                     if h.kind is MatchKind.EXACT and h.pattern not in found]
            found |= {h.pattern for h in hits}
        hits = [h for h in hits if h.kind.label in self.cfg.alert_kinds]
        if not hits:
            return []
        kinds = {h.pattern: h.kind for h in hits}
        rows = repository.entries_for(self.store, kinds)
        return rank_matches([Match(kinds[r["pattern"]], r) for r in rows])

    async def watch(self, stop: asyncio.Event) -> None:
        """Daemon service: pick up list changes (sync, CLI) every ``check_interval_s``."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.reload)
            except Exception as err:  # noqa: BLE001 - a broken reload keeps the old list in service
                self.log.error("hotlist_reload_failed", error=str(err))
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.check_interval_s)
            except TimeoutError:
                pass

    def status(self) -> dict[str, Any]:
        """Health status: the list's version and age; a stale or missing list is a warning."""
        m = repository.meta(self.store)
        age_h = None
        if m.updated_at:
            age_h = (datetime.now(UTC) - parse_iso(m.updated_at)).total_seconds() / 3600
        if age_h is None:
            severity, message = "warning", "no department hotlist loaded (import one or enable sync)"
        elif age_h > self.cfg.stale_after_h:
            severity, message = "warning", f"hotlist is {age_h:.1f} h old (stale after {self.cfg.stale_after_h:g} h)"
        else:
            severity, message = "ok", f"hotlist version {m.version}, {age_h:.1f} h old"
        return {
            "severity": severity, "message": message, "version": m.version,
            "updated_at": m.updated_at, "age_h": None if age_h is None else round(age_h, 2),
            "source": m.source, "entries": m.entries, "patterns_loaded": len(self.index),
            "loaded_at": self.loaded_at,
        }
