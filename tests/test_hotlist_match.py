"""Hotlist matching: exact, OCR-confusable, one missing/extra character, wildcards."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alprd.hotlist.match import (
    CONFUSION_CLASSES,
    Hit,
    MatchKind,
    PlateIndex,
    canonical,
    glob_match,
    one_indel_apart,
)

PLATE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
plates = st.text(alphabet=PLATE_CHARS, min_size=4, max_size=8)
SWAP = {c: group for group in CONFUSION_CLASSES for c in group}


def kinds(index: PlateIndex, plate: str) -> dict[str, MatchKind]:
    return {h.pattern: h.kind for h in index.match(plate)}


def test_each_kind_of_match_is_named():
    index = PlateIndex(["ABC123", "XYZ789", "AB?12*", "K*99"])
    assert kinds(index, "ABC123") == {"ABC123": MatchKind.EXACT, "AB?12*": MatchKind.PARTIAL}
    assert kinds(index, "A8C1Z3")["ABC123"] == MatchKind.CONFUSABLE
    assert kinds(index, "ABC12")["ABC123"] == MatchKind.NEAR  # a character missing
    assert kinds(index, "ABC1234")["ABC123"] == MatchKind.NEAR  # a character extra
    assert kinds(index, "XY7789") == {}  # a substitution that is no OCR confusion
    assert kinds(index, "KQW199") == {"K*99": MatchKind.PARTIAL}
    assert kinds(index, "ABXY125") == {}  # "?" is exactly one character


def test_exact_hits_rank_before_others():
    index = PlateIndex(["ABC12", "ABC123", "A8C123", "ABC*"])
    hits = index.match("ABC123")
    assert [h.kind for h in hits] == sorted(h.kind for h in hits)
    assert hits[0] == Hit(MatchKind.EXACT, "ABC123")
    assert {h.pattern for h in hits} == {"ABC12", "ABC123", "A8C123", "ABC*"}


def test_empty_index_and_empty_plate():
    assert PlateIndex([]).match("ABC123") == []
    assert PlateIndex(["ABC123"]).match("") == []


@given(plates)
def test_a_plate_matches_itself_exactly(plate):
    assert kinds(PlateIndex([plate, "ZZZZZZZ"]), plate)[plate] == MatchKind.EXACT


@given(plates, st.data())
def test_ocr_confusions_still_match(plate, data):
    misread = "".join(data.draw(st.sampled_from(SWAP.get(c, c))) for c in plate)
    got = kinds(PlateIndex([plate]), misread)[plate]
    assert got == (MatchKind.EXACT if misread == plate else MatchKind.CONFUSABLE)


@given(plates, st.data())
def test_one_missing_or_extra_character_is_near(plate, data):
    i = data.draw(st.integers(0, len(plate) - 1))
    dropped = plate[:i] + plate[i + 1:]
    added = plate[:i] + data.draw(st.sampled_from(PLATE_CHARS)) + plate[i:]
    index = PlateIndex([plate])
    assert kinds(index, dropped)[plate] == MatchKind.NEAR
    assert kinds(index, added)[plate] == MatchKind.NEAR


@settings(max_examples=300)
@given(plates, plates)
def test_no_match_unless_related(pattern, plate):
    """Any hit is justified by the definitions; checked against a brute-force oracle."""
    got = kinds(PlateIndex([pattern]), plate).get(pattern)
    cp, cq = canonical(pattern), canonical(plate)
    expected = (MatchKind.EXACT if pattern == plate else MatchKind.CONFUSABLE if cp == cq
                else MatchKind.NEAR if one_indel_apart(cp, cq) else None)
    assert got == expected


@given(plates, st.data())
def test_wildcards_match_what_they_cover(plate, data):
    holes = data.draw(st.sets(st.integers(0, len(plate) - 1), max_size=2))
    pattern = "".join("?" if i in holes else c for i, c in enumerate(plate))
    cut = data.draw(st.integers(1, len(plate)))
    star = plate[:cut] + "*"
    index = PlateIndex([pattern, star] if "?" in pattern else [star])
    found = kinds(index, plate)
    assert found[star] == MatchKind.PARTIAL
    if "?" in pattern:
        assert found[pattern] == MatchKind.PARTIAL
        assert pattern not in kinds(index, plate + "X")


@pytest.mark.timeout(20)  # the regex this replaced took minutes per read on such a pattern
def test_a_pattern_of_many_stars_matches_at_once():
    hostile = "*" * 60 + "ABC"
    many = "*A" * 10 + "*"
    index = PlateIndex([hostile, many, "K*99"])
    assert kinds(index, "XYZABC") == {hostile: MatchKind.PARTIAL}
    assert kinds(index, "AAAAAAAAAA") == {many: MatchKind.PARTIAL}
    for read in ("XYZABD", "AB" * 9, "ABCABCABCX"):  # "AB" * 9: one A short
        assert kinds(index, read) == {}


@settings(max_examples=300)
@given(st.text(alphabet="AB?*", max_size=10), st.text(alphabet="AB", max_size=10))
def test_glob_match_agrees_with_fnmatch(pattern, text):
    assert glob_match(pattern, text) == fnmatch.fnmatchcase(text, pattern)
