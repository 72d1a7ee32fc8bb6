import pytest
from hypothesis import given
from hypothesis import strategies as st

from alprd.daemon.dedupe import MAX_VOTES, Deduper, Observation
from alprd.plates import edit_distance, normalize_plate


def obs(text, conf, t):
    return Observation(text, conf, t, item=(text, conf))


def test_consecutive_sightings_become_one_read_with_best_confidence():
    d = Deduper(gap_s=1.0, reread_window_s=10)
    closed = []
    for i, (text, conf) in enumerate([("ABC123", 0.7), ("ABC128", 0.6), ("ABC123", 0.95), ("ABC123", 0.8)]):
        closed += d.feed([obs(text, conf, i * 0.1)], i * 0.1)
    assert closed == []
    closed += d.feed([], 2.0)
    assert len(closed) == 1
    assert closed[0].best.item == ("ABC123", 0.95)
    assert closed[0].frames == 4


def test_different_plates_are_separate_reads():
    d = Deduper(gap_s=1.0, reread_window_s=10)
    d.feed([obs("ABC123", 0.9, 0), obs("XYZ789", 0.8, 0)], 0)
    closed = d.flush()
    assert sorted(t.best.text for t in closed) == ["ABC123", "XYZ789"]


def test_same_plate_within_reread_window_is_not_a_new_read():
    d = Deduper(gap_s=1.0, reread_window_s=10)
    d.feed([obs("ABC123", 0.9, 0)], 0)
    assert len(d.feed([], 1.5)) == 1
    assert d.feed([obs("ABC123", 0.9, 5.0)], 5.0) == []
    assert d.flush() == [] and d.rereads == 1
    # well after the window it is a new pass
    d.feed([obs("ABC123", 0.9, 30.0)], 30.0)
    assert len(d.flush()) == 1


def test_track_stays_open_while_seen_within_gap():
    d = Deduper(gap_s=1.0, reread_window_s=0)
    for t in range(50):
        assert d.feed([obs("ABC123", 0.5, t * 0.5)], t * 0.5) == []
    assert d.flush()[0].frames == 50


@given(st.text("ABC0123", max_size=8), st.text("ABC0123", max_size=8))
def test_edit_distance_is_symmetric_and_bounded(a, b):
    assert edit_distance(a, b) == edit_distance(b, a)
    assert edit_distance(a, b) <= max(len(a), len(b))
    assert (edit_distance(a, b) == 0) == (a == b)
    assert edit_distance(a, b, limit=1) == min(edit_distance(a, b), 2)


def test_normalize_plate():
    assert normalize_plate(" ab-c 12.3 ") == "ABC123"


def test_a_pass_is_fused_character_by_character():
    # the best single frame misreads one character; the other frames outvote it
    d = Deduper(gap_s=1.0, reread_window_s=10)
    frames = [("ABC123", 0.8), ("A8C123", 0.9), ("ABC123", 0.7), ("ABC12", 0.5)]
    for i, (text, conf) in enumerate(frames):
        d.feed([Observation(text, conf, i * 0.1, None, (conf,) * len(text))], i * 0.1)
    (track,) = d.flush()
    assert track.best.text == "A8C123"           # the best frame alone is wrong
    text, conf, chars = track.fused()
    assert text == "ABC123"
    assert chars[0] == pytest.approx(0.9)        # unanimous: the most confident voter's
    assert chars[1] == pytest.approx(1.5 / 2.4 * 0.8)  # split 1.5 to 0.9: its share of the votes
    assert conf == min(chars)


def test_fusion_keeps_a_bounded_number_of_sightings():
    d = Deduper(gap_s=100.0, reread_window_s=10)
    for i in range(500):
        d.feed([Observation("ABC123", (i % 97) / 97, i * 0.01, None)], i * 0.01)
    (track,) = d.flush()
    assert track.frames == 500 and len(track.votes) == MAX_VOTES
    assert min(o.confidence for o in track.votes) > 0.6  # the most confident ones kept
    assert track.fused()[0] == "ABC123"
