"""CTC prefix beam search over the recogniser's per-step probabilities, and forced alignment.

Greedy decoding keeps one text per crop. The beam search keeps the few likeliest
texts, each with its probability summed over all the alignments that spell it, so that

* a read carries its top candidates (a plate misread at the top can still hit the
  hotlist through the second one), and
* the search can be walked through a :class:`~alprd.vision.formats.Syntaxes` automaton:
  only prefixes that a plate syntax of the configured regions can complete grow, each
  region's character weights (rare letters) scale the probabilities on the way, and a whole
  text that fits only a loose syntax is weighed by the automaton's prior.

Pure numpy + Python over a (steps, classes) array, blank last; steps where the blank
is certain are folded in one multiplication, so a plate costs a few hundred operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alprd.vision.formats import State, Syntaxes

_CERTAIN_BLANK = 0.999


@dataclass(frozen=True)
class Candidate:
    text: str
    probability: float
    region: str | None = None  # the region whose syntax the text fits (with a Syntaxes search)


def beam_search(probs: np.ndarray, alphabet: str, beam: int = 8, syntaxes: Syntaxes | None = None,
                min_p: float = 1e-3) -> list[Candidate]:
    """The likeliest texts of one crop, best first; with ``syntaxes`` only whole plates of them.

    ``probs`` is (steps, len(alphabet) + 1) with the blank last. Characters below
    ``min_p`` at a step are not tried there (they cannot change the top candidates).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(alphabet) + 1:
        raise ValueError(f"expected (steps, {len(alphabet) + 1}) probabilities, got {probs.shape}")
    if syntaxes is not None:
        weights = np.array([syntaxes.weights.get(c, 1.0) for c in alphabet] + [1.0])
        probs = probs * weights
    blank = len(alphabet)
    start: State = syntaxes.start if syntaxes is not None else frozenset()
    beams: dict[str, tuple[float, float, State]] = {"": (1.0, 0.0, start)}
    for row in probs:
        chars = np.flatnonzero(row[:blank] >= min_p)
        if row[blank] >= _CERTAIN_BLANK and not len(chars):
            pb = row[blank]
            beams = {k: ((b + n) * pb, 0.0, s) for k, (b, n, s) in beams.items()}
            continue
        nxt: dict[str, list] = {}
        for prefix, (pb, pnb, state) in beams.items():
            _add(nxt, prefix, (pb + pnb) * row[blank], 0.0, state)
            if prefix:  # the last character held for one more step
                _add(nxt, prefix, 0.0, pnb * row[alphabet.index(prefix[-1])], state)
            for c in chars:
                ch = alphabet[c]
                new_state = state
                if syntaxes is not None:
                    new_state = syntaxes.step(state, ch)
                    if not new_state:
                        continue
                # a repeated character needs a blank in between
                p_from = pb if prefix and prefix[-1] == ch else pb + pnb
                _add(nxt, prefix + ch, 0.0, p_from * row[c], new_state)
        ranked = sorted(nxt.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)[:beam]
        beams = {k: (v[0], v[1], v[2]) for k, v in ranked}
    out = []
    for prefix, (pb, pnb, state) in beams.items():
        region = syntaxes.accepts(state) if syntaxes is not None else None
        if prefix and syntaxes is None:
            out.append(Candidate(prefix, float(pb + pnb)))
        elif prefix and region is not None:
            out.append(Candidate(prefix, float(pb + pnb) * syntaxes.prior(state), region))
    out.sort(key=lambda c: c.probability, reverse=True)
    return out


def _add(table: dict[str, list], prefix: str, pb: float, pnb: float, state: State) -> None:
    """Sum the probability of another way of spelling ``prefix`` (ending in a blank or not)."""
    e = table.get(prefix)
    if e is None:
        table[prefix] = [pb, pnb, state]
    else:
        e[0] += pb
        e[1] += pnb


def align(probs: np.ndarray, text: str, alphabet: str) -> tuple[float, tuple[float, ...]]:
    """Confidence of ``text`` from its best alignment: (lowest step probability, per character best).

    The same measure as greedy decoding's, for a text the beam search chose; for the
    greedy text itself the best alignment is the greedy path, so the figures agree.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = [alphabet.index(c) for c in text]
    blank = len(alphabet)
    ext = [blank]
    for lab in labels:
        ext += [lab, blank]
    steps, n = len(probs), len(ext)
    ext_a = np.array(ext)
    logp = np.log(np.maximum(probs[:, ext_a], 1e-30))
    # a state may come from itself, the one before, or two before (skip a blank between different labels)
    skip = np.zeros(n, bool)
    skip[2:] = (ext_a[2:] != blank) & (ext_a[2:] != ext_a[:-2])
    score = np.full(n, -np.inf)
    score[0] = logp[0, 0]
    if n > 1:
        score[1] = logp[0, 1]
    back = np.zeros((steps, n), np.int64)
    for t in range(1, steps):
        one, two = np.full(n, -np.inf), np.full(n, -np.inf)
        one[1:] = score[:-1]
        two[2:] = np.where(skip[2:], score[:-2], -np.inf)
        stay = score
        choice = np.stack([stay, one, two])
        arg = choice.argmax(0)
        back[t] = np.arange(n) - arg
        score = choice[arg, np.arange(n)] + logp[t]
    end = n - 1 if n == 1 or score[n - 1] >= score[n - 2] else n - 2
    path = [end]
    for t in range(steps - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    path.reverse()
    step_p = np.exp(logp[np.arange(steps), path])
    per_char = np.zeros(len(labels))
    for t, s in enumerate(path):
        if s % 2 == 1:
            per_char[s // 2] = max(per_char[s // 2], step_p[t])
    return float(step_p.min()), tuple(float(c) for c in per_char)
