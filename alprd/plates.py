"""Plate text helpers shared by vision, dedupe and hotlist matching."""

from __future__ import annotations

import re

_NOT_PLATE_CHARS = re.compile(r"[^A-Z0-9]")


def normalize_plate(text: str) -> str:
    """Upper-case and strip everything but A-Z and 0-9 (spaces, dashes, dots)."""
    return _NOT_PLATE_CHARS.sub("", text.upper())


def edit_distance(a: str, b: str, limit: int = 99) -> int:
    """Levenshtein distance, capped at ``limit + 1`` (and stopping early once it is exceeded)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return min(prev[-1], limit + 1)
