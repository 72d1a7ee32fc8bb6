"""Plate-to-hotlist matching, tolerant of OCR errors. Pure logic, no I/O.

Both the read and every pattern are *canonicalised* to OCR confusion classes
(0/O/D/Q, 1/I/L/T, 2/Z, 5/S, 6/G, 8/B), so a confusable read is a plain
lookup. One missing or extra character is found with the symmetric-delete
trick: a read missing a character equals one of the pattern's single-character
deletions; a read with an extra character has a deletion equal to the pattern.

Both forms of every pattern (canonical, and each single deletion) go into one
table, and a read looks up its canonical form and its deletions in one go.
A million patterns make ~8 million keys: as a Python dict that is gigabytes,
so the table is a sorted array of 64-bit string hashes (12 bytes a key)
searched with numpy. Every candidate is checked against its pattern, so a
substitution neighbour or a hash collision never becomes a hit.

Wildcard patterns (``?`` one character, ``*`` any run, from partial plates of
major crimes) are few: ``?``-only patterns are looked up by (length, wildcard
positions); ``*`` patterns are grouped by the characters before their first
wildcard, and only the groups whose prefix the read starts with are tried.
They are matched by :func:`glob_match`, not a regex: ``re`` backtracks
exponentially on a pattern of many ``*`` (a row of sixty froze the daemon).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from operator import itemgetter
from typing import Any

import numpy as np

CONFUSION_CLASSES = ("0ODQ", "1ILT", "2Z", "5S", "6G", "8B")
_CANON = str.maketrans({c: group[0] for group in CONFUSION_CLASSES for c in group[1:]})
WILDCARDS = frozenset("?*")
_STAR_RUNS = re.compile(r"\*{2,}")


class MatchKind(IntEnum):
    """How a read matched; the order is the ranking (exact hits first)."""

    EXACT = 0
    CONFUSABLE = 1  # equal once OCR confusions are folded (8 read for B, ...)
    NEAR = 2  # one character missing or extra (after folding confusions)
    PARTIAL = 3  # a wildcard pattern (partial plate)
    CANDIDATE = 4  # not the read text but one of its OCR candidates is exactly on the list

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, order=True)
class Hit:
    kind: MatchKind
    pattern: str


def canonical(text: str) -> str:
    """Fold every OCR-confusable character to its class representative."""
    return text.translate(_CANON)


def is_wildcard(pattern: str) -> bool:
    return not WILDCARDS.isdisjoint(pattern)


def deletions(text: str) -> set[str]:
    """Every string made by deleting exactly one character."""
    return {text[:i] + text[i + 1:] for i in range(len(text))}


def one_indel_apart(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with exactly one character inserted or deleted."""
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return short in deletions(long_)


def fold_stars(pattern: str) -> str:
    """``A**B`` is ``A*B``: one pattern, stored and tried once."""
    return _STAR_RUNS.sub("*", pattern)


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` is covered by ``pattern`` (``?`` one character, ``*`` any run).

    Time is at most len(pattern) * len(text), however many ``*``: on a mismatch
    only the latest ``*`` takes one more character, as an earlier ``*`` can
    never do better than it.
    """
    p = t = 0
    star = mark = -1  # the latest "*" seen, and where in text its run ends
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif star >= 0:
            mark += 1
            p, t = star + 1, mark
        else:
            return False
    return pattern[p:].strip("*") == ""


def _hashes(keys: Iterable[str], count: int = -1) -> np.ndarray:
    return np.fromiter(map(hash, keys), dtype=np.int64, count=count)


class _HashTable:
    """Multimap string -> int as a sorted hash array: compact and fast enough.

    Python's string hash is randomised per process, which is fine: the table is
    built and searched in the same process and never saved.
    """

    def __init__(self, hashes: np.ndarray, values: np.ndarray):
        order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[order]
        self.values = values[order]

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.values.nbytes

    def get(self, keys: list[str]) -> list[int]:
        if not keys or not len(self.hashes):
            return []
        q = _hashes(keys, len(keys))
        lo = np.searchsorted(self.hashes, q)
        lo[lo == len(self.hashes)] = 0
        out: list[int] = []
        for i in (self.hashes[lo] == q).nonzero()[0].tolist():  # most reads: none
            j, h = int(lo[i]), int(q[i])
            while j < len(self.hashes) and self.hashes[j] == h:
                out.append(int(self.values[j]))
                j += 1
        return out


class PlateIndex:
    """An immutable index of hotlist patterns. Build a new one to change the list."""

    def __init__(self, patterns: Iterable[str], version: int = 0):
        self.version = version
        plain: set[str] = set()
        wild: set[str] = set()
        for p in patterns:
            (wild if is_wildcard(p) else plain).add(p)
        self.patterns: list[str] = sorted(plain)
        n = len(self.patterns)
        counts = np.zeros(n, dtype=np.int32)

        def keys() -> Iterable[int]:  # streamed: no list of 7 million strings
            for i, p in enumerate(self.patterns):
                c = canonical(p)
                d = deletions(c)
                counts[i] = 1 + len(d)
                yield hash(c)
                yield from map(hash, d)

        hashes = np.fromiter(keys(), dtype=np.int64)
        self._table = _HashTable(hashes, np.repeat(np.arange(n, dtype=np.int32), counts))
        self._build_wildcards(sorted(wild))

    def _build_wildcards(self, wild: list[str]) -> None:
        self.wildcards = wild
        # '?'-only patterns: (length, positions of '?') -> canonical literal chars -> patterns
        fixed: dict[tuple[int, tuple[int, ...]], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        # '*' patterns: canonical characters before the first wildcard -> (canonical, pattern)
        self._runs: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for p in wild:
            if "*" in p:
                cp = fold_stars(canonical(p))
                prefix = cp[: min(i for i in (cp.find("?"), cp.find("*")) if i >= 0)]
                self._runs[prefix].append((cp, p))
                continue
            holes = tuple(i for i, c in enumerate(p) if c == "?")
            literal = canonical("".join(c for c in p if c != "?"))
            fixed[(len(p), holes)][literal].append(p)
        # per read length: (picks the known characters, their table)
        self._fixed_by_len: dict[int, list[tuple[Callable[[str], Any], dict[str, list[str]]]]] = defaultdict(list)
        for (length, holes), table in fixed.items():
            known = itemgetter(*(i for i in range(length) if i not in holes))
            self._fixed_by_len[length].append((known, table))
        self._run_prefix_lens = sorted({len(prefix) for prefix in self._runs})

    def __len__(self) -> int:
        return len(self.patterns) + len(self.wildcards)

    @property
    def nbytes(self) -> int:
        """Approximate memory of the lookup tables (not counting the pattern strings)."""
        return self._table.nbytes

    def match(self, plate: str) -> list[Hit]:
        """Every pattern the (normalised) plate matches, best kind first."""
        if not plate:
            return []
        q = canonical(plate)
        hits: dict[str, MatchKind] = {}
        for i in set(self._table.get([q, *deletions(q)])):
            p = self.patterns[i]
            cp = canonical(p)
            if cp == q:
                hits[p] = MatchKind.EXACT if p == plate else MatchKind.CONFUSABLE
            elif one_indel_apart(cp, q):
                hits[p] = MatchKind.NEAR
            # else: one substitution apart (both lost a different character), or a hash collision
        for p in self._match_wildcards(q):
            hits.setdefault(p, MatchKind.PARTIAL)
        return sorted(Hit(kind, p) for p, kind in hits.items())

    def _match_wildcards(self, q: str) -> list[str]:
        out: list[str] = []
        for known, table in self._fixed_by_len.get(len(q), ()):
            out.extend(table.get("".join(known(q)), ()))
        for n in self._run_prefix_lens:
            if n > len(q):
                break
            out.extend(p for g, p in self._runs.get(q[:n], ()) if glob_match(g, q))
        return out
