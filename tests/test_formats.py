"""Plate syntaxes, the CTC beam search that walks them, and forced alignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from alprd.config import VisionConfig
from alprd.vision.ctc import align, beam_search
from alprd.vision.formats import LOOSE_PRIOR, REGIONS, Syntaxes, parse_syntax
from alprd.vision.ocr import ALPHABET, decode_ctc

BLANK = len(ALPHABET)


def spell(steps: list[dict[str, float]]) -> np.ndarray:
    """(steps, classes) probabilities: each step's listed characters ('-' = blank), rest spread thin."""
    probs = np.full((len(steps), BLANK + 1), 1e-4)
    for t, step in enumerate(steps):
        for ch, p in step.items():
            probs[t, BLANK if ch == "-" else ALPHABET.index(ch)] = p
        probs[t] /= probs[t].sum()
    return probs


def plate(text: str, **ambiguous: dict[str, float]) -> np.ndarray:
    """``text`` one character per step with blanks between; ``p3={"O": .6, "0": .4}`` makes step 3 unsure."""
    steps = []
    for i, ch in enumerate(text):
        steps += [ambiguous.get(f"p{i}", {ch: 0.98}), {"-": 0.99}]
    return spell(steps)


def test_syntax_parsing_and_its_errors():
    tokens = parse_syntax("L{1,3}D[EH]")
    assert [(t.lo, t.hi) for t in tokens] == [(1, 3), (1, 1), (1, 1)]
    assert tokens[2].chars == frozenset("EH")
    for bad in ("L{3,1}", "Q", "L{0}"):
        with pytest.raises(ValueError, match="plate syntax"):
            parse_syntax(bad)


def test_region_of_a_text():
    br = Syntaxes(["br"])
    assert br.region_of("ABC1234") == "br" and br.region_of("ABC1D23") == "br"
    assert br.region_of("AB12345") is None and br.region_of("ABC123") is None
    both = Syntaxes(["us", "br"])
    assert both.region_of("ABC1234") == "br"   # the catch-all US syntax yields to a specific one
    assert both.region_of("7ABC123") == "us"
    eu = Syntaxes(["eu"])
    assert eu.region_of("AB123CD") == "eu" and eu.region_of("1234567") is None
    with pytest.raises(ValueError, match="unknown plate region"):
        Syntaxes(["xx"])


def test_config_regions_are_the_known_ones():
    assert set(VisionConfig.model_fields["regions"].annotation.__args__[0].__args__) == set(REGIONS)


def test_beam_search_top_is_the_greedy_text_on_a_clear_plate():
    probs = plate("ABC1234")
    (best, *_rest) = beam_search(probs, ALPHABET)
    assert best.text == decode_ctc(probs[None])[0][0] == "ABC1234"
    assert best.probability == pytest.approx(np.prod(probs.max(axis=1)), rel=0.05)


def test_beam_search_sums_alignments_and_keeps_candidates():
    # greedy reads "AB" step by step, but "A" held over two steps is likelier in sum
    probs = spell([{"A": 0.6, "-": 0.4}, {"A": 0.35, "B": 0.4, "-": 0.25}, {"-": 0.99}])
    assert decode_ctc(probs[None])[0][0] == "AB"
    cands = beam_search(probs, ALPHABET)
    assert cands[0].text == "A" and "AB" in [c.text for c in cands]
    assert all(a.probability >= b.probability for a, b in itertools.pairwise(cands))


def test_a_syntax_decides_a_look_alike_inside_the_search():
    # a Brazilian plate whose 4th character (a digit position) looks more like an O than a 0
    probs = plate("ABC0234", p3={"O": 0.55, "0": 0.45})
    assert decode_ctc(probs[None])[0][0] == "ABCO234"
    best = beam_search(probs, ALPHABET, syntaxes=Syntaxes(["br"]))[0]
    assert (best.text, best.region) == ("ABC0234", "br")
    # with no syntax that fits, nothing is forced
    assert beam_search(plate("AB12"), ALPHABET, syntaxes=Syntaxes(["br"])) == []


def test_a_text_that_fits_a_strict_syntax_outweighs_one_that_fits_only_a_loose_one():
    # LLDDDLL fixes the last character as a letter; only the loose Austrian/Polish forms allow a 0 there
    probs = plate("AB123CO", p6={"0": 0.55, "O": 0.45})
    eu = Syntaxes(["eu"])
    assert eu.region_of("AB123C0") == "eu" and eu.prior(_state(eu, "AB123C0")) == LOOSE_PRIOR
    assert eu.prior(_state(eu, "AB123CO")) == 1.0
    assert beam_search(probs, ALPHABET, syntaxes=eu)[0].text == "AB123CO"
    # a clear reading is not overruled: the prior only tips a close call
    assert beam_search(plate("AB123C0"), ALPHABET, syntaxes=eu)[0].text == "AB123C0"
    # a region of loose syntaxes only (US) is not scaled at all
    us = Syntaxes(["us"])
    assert us.prior(_state(us, "ABC123")) == 1.0


def _state(syntaxes: Syntaxes, text: str):
    state = syntaxes.start
    for c in text:
        state = syntaxes.step(state, c)
    return state


def test_alignment_confidence_matches_greedy_on_the_greedy_text():
    probs = plate("XY7", p1={"Y": 0.7, "V": 0.3})
    text, conf, chars = decode_ctc(probs[None])[0]
    a_conf, a_chars = align(probs, text, ALPHABET)
    assert a_conf == pytest.approx(conf, abs=1e-5)
    assert a_chars == pytest.approx(chars, abs=1e-5)
    v_conf, v_chars = align(probs, "XV7", ALPHABET)
    assert v_chars[1] == pytest.approx(0.3, abs=0.01) and v_conf < conf
