"""Plate syntaxes by region, as automata the CTC beam search can walk.

A reader set up for Brazil should never read ``ABC1Z34`` as ``A8C1234``: the letters
come first. ``[vision] regions`` names the regions a unit expects; each region is a list
of syntaxes written with ``L`` (a letter), ``D`` (a digit), ``X`` (either), a literal
character in brackets (``[EH]``) and counts (``L{1,3}``). The beam search in
:mod:`alprd.vision.ctc` only grows prefixes that some syntax can still complete, so a
look-alike swap is decided by the model's probabilities at that very position, not by a
string replacement afterwards. A region may also weigh characters that its plates
rarely carry (most US standard series avoid ``O``, ``Q`` and ``I``).

The European list covers the common national formats (the letters and digits of the
plate, without the country band or seals); it is a union, so it checks little more
than where letters and digits may stand.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache

LETTERS = frozenset(string.ascii_uppercase)
DIGITS = frozenset(string.digits)
_TOKEN = re.compile(r"(?:([LDX])|\[([A-Z0-9]+)\])(?:\{(\d+)(?:,(\d+))?\})?")

REGIONS: dict[str, tuple[str, ...]] = {
    # Mercosur LLL9L99 and the older grey/red LLL9999
    "br": ("LLLDDDD", "LLLDLDD"),
    # vanity plates make almost anything legal
    "us": ("X{1,10}",),
    "eu": (
        "L{1,3}L{1,2}D{1,4}", "L{2,5}D{1,3}[EH]",            # DE (city, letters, number; E/H)
        "LLDDDLL", "LLDDLLL", "DDDDLLL", "DLLLDDD",          # FR/IT/HR/SK, UK, ES, BE
        "LLDDLL", "DDLLDD", "LLLLDD", "DDDDLL", "LLDDDD",    # NL sidecodes, PT
        "DDLLLD", "DLLLDD", "LLDDDL", "LDDDLL", "LLLDDL", "DLLDDD", "DDDLLD",
        "L{2,3}X{4,5}", "L{1,2}X{3,6}", "LLLDDD", "DDDLLL",   # PL, AT/CH, SE/FI/LT/HU/EE
        "LLLLDDD", "LLDDDDD", "LLLDDDD", "DLDDDDD", "DLLDDDD",  # HU, NO/DK, GR, CZ
        "LDDLLL", "LLDDDLLL", "LDDDDLL", "LLDDDDLL", "D{2,3}L{1,2}D{1,6}",  # RO, BG, IE
    ),
}
# regions whose syntax fits nearly anything: a read that also fits another region is of that one
CATCH_ALL = frozenset({"us"})
# multiplier of a character's probability in the beam search (1 where not listed)
# (US O/Q/I at 0.2/0.5/0.6 was tried: 90.2% exact on the held-out US crops instead of 92.3%,
# the ground truth has real O plates; so no region weighs characters today)
CHAR_WEIGHTS: dict[str, dict[str, float]] = {}
# a text that fits only a loose syntax (one with X: a letter or a digit) is this much less likely
# than one that fits a syntax fixing every position: Europe's Polish and Austrian/Swiss forms
# otherwise let "AB123C0" stand where the common LLDDDLL says the last two are letters
LOOSE_PRIOR = 0.3


@dataclass(frozen=True)
class Token:
    chars: frozenset[str]
    lo: int
    hi: int


def parse_syntax(syntax: str) -> tuple[Token, ...]:
    """``"L{1,3}D"`` -> tokens; raises ValueError naming what is wrong."""
    tokens, pos = [], 0
    while pos < len(syntax):
        m = _TOKEN.match(syntax, pos)
        if not m:
            raise ValueError(f"plate syntax {syntax!r}: cannot read {syntax[pos:]!r} "
                             "(use L, D, X, [ABC] and counts like {2} or {1,3})")
        kind, literal, lo, hi = m.groups()
        chars = frozenset(literal) if literal else {"L": LETTERS, "D": DIGITS, "X": LETTERS | DIGITS}[kind]
        a = int(lo) if lo else 1
        b = int(hi) if hi else a
        if a < 1 or b < a:
            raise ValueError(f"plate syntax {syntax!r}: bad count {{{lo},{hi}}}")
        tokens.append(Token(chars, a, b))
        pos = m.end()
    return tuple(tokens)


State = frozenset  # of (syntax index, token index, characters of that token so far)


class Syntaxes:
    """The syntaxes of some regions as one automaton over prefixes.

    ``start`` is the state of the empty prefix; ``step(state, char)`` the state after one
    more character (empty: no syntax can go on); ``accepts(state)`` whether a prefix that
    reached it is a whole plate, and of which region.
    """

    def __init__(self, regions: tuple[str, ...] | list[str]):
        unknown = [r for r in regions if r not in REGIONS]
        if unknown:
            raise ValueError(f"unknown plate region(s) {unknown}: use any of {sorted(REGIONS)}")
        self.regions = tuple(regions)
        self._syntaxes = [(r, parse_syntax(s)) for r in self.regions for s in REGIONS[r]]
        self.start: State = frozenset((i, -1, 0) for i in range(len(self._syntaxes)))
        weights: dict[str, float] = {}
        for r in self.regions:  # a character any region expects freely keeps its full weight
            for c in LETTERS | DIGITS:
                weights[c] = max(weights.get(c, 0.0), CHAR_WEIGHTS.get(r, {}).get(c, 1.0))
        self.weights = weights
        loose = [any(t.chars == LETTERS | DIGITS for t in tokens) for _, tokens in self._syntaxes]
        top = LOOSE_PRIOR if all(loose) else 1.0  # relative: a region of loose syntaxes only is unaffected
        self._prior = [(LOOSE_PRIOR if lo else 1.0) / top for lo in loose]
        self._step = lru_cache(maxsize=65536)(self._step_uncached)

    def step(self, state: State, char: str) -> State:
        return self._step(state, char)

    def _step_uncached(self, state: State, char: str) -> State:
        out = set()
        for s, t, k in state:
            tokens = self._syntaxes[s][1]
            if t >= 0 and k < tokens[t].hi and char in tokens[t].chars:
                out.add((s, t, k + 1))
            if (t < 0 or k >= tokens[t].lo) and t + 1 < len(tokens) and char in tokens[t + 1].chars:
                out.add((s, t + 1, 1))
        return frozenset(out)

    def accepts(self, state: State) -> str | None:
        """The region whose syntax the prefix completes (the first configured, catch-alls last), or None."""
        done = {self._syntaxes[s][0] for s, t, k in state
                if t == len(self._syntaxes[s][1]) - 1 and k >= self._syntaxes[s][1][t].lo}
        ranked = sorted(done, key=lambda r: (r in CATCH_ALL, self.regions.index(r)))
        return ranked[0] if ranked else None

    def prior(self, state: State) -> float:
        """How plausible a whole plate that reached ``state`` is before the model looks (0 if none)."""
        return max((self._prior[s] for s, t, k in state
                    if t == len(self._syntaxes[s][1]) - 1 and k >= self._syntaxes[s][1][t].lo), default=0.0)

    def region_of(self, text: str) -> str | None:
        """Which configured region's syntax ``text`` fits (None: none)."""
        state = self.start
        for c in text:
            state = self.step(state, c)
            if not state:
                return None
        return self.accepts(state)
