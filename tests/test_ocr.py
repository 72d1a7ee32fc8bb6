"""Plate OCR: slot decoding, the shipped ONNX model, garbage input and model errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alprd.plates import edit_distance
from alprd.synth import random_plate_text, render_plate
from alprd.vision.base import ModelError, PlateRecognizer, PlateText
from alprd.vision.ocr import (
    ALPHABET,
    IMG_H,
    IMG_W,
    PAD,
    WIDE_W,
    OnnxRecognizer,
    decode_ctc,
    decode_slots,
    fuse_reads,
    input_width,
    preprocess,
    second_views,
)

MODEL = Path(__file__).resolve().parents[1] / "models" / "plate_ocr.onnx"
NCLS = len(ALPHABET) + 1


def one_hot(text: str, slots: int = 10, p: float = 0.9) -> np.ndarray:
    """Slot probabilities that spell ``text`` (the winner gets ``p``), pads after it."""
    probs = np.full((slots, NCLS), (1 - p) / (NCLS - 1), np.float32)
    for i in range(slots):
        probs[i, ALPHABET.index(text[i]) if i < len(text) else NCLS - 1] = p
    return probs



@pytest.fixture(scope="module")
def rec() -> OnnxRecognizer:
    return OnnxRecognizer(MODEL, threads=1)


# ------------------------------------------------------------------ decoding
def test_decode_maps_alphabet_and_drops_pads():
    out = decode_slots(np.stack([one_hot("ABC123"), one_hot("Z9"), one_hot("")]))
    assert [t for t, _, _ in out] == ["ABC123", "Z9", ""]
    _, conf, chars = out[0]
    assert conf == pytest.approx(0.9) and chars == pytest.approx((0.9,) * 6)
    assert ALPHABET == "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" and PAD == "_"


def test_decode_pad_in_the_middle_is_skipped_and_confidence_is_the_weakest_slot():
    p = one_hot("ABXCD")
    p[2] = one_hot("")[9]            # slot 2 says pad
    p[3, :] = 0.01
    p[3, ALPHABET.index("C")] = 0.6  # a doubtful C
    text, conf, chars = decode_slots(p[None])[0]
    assert text == "ABCD"
    assert conf == pytest.approx(0.6)
    assert chars == pytest.approx((0.9, 0.9, 0.6, 0.9))


def test_decode_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        decode_slots(np.zeros((2, 10, 5), np.float32))
    with pytest.raises(ValueError):
        decode_slots(np.zeros((10, NCLS), np.float32))


def test_decode_is_vectorised_over_a_batch():
    texts = ["".join(np.random.default_rng(i).choice(list(ALPHABET), 7)) for i in range(50)]
    out = decode_slots(np.stack([one_hot(t) for t in texts]))
    assert [o[0] for o in out] == texts


def ctc_probs(path: str, p: float = 0.9) -> np.ndarray:
    """Per-step probabilities for a CTC path written with '-' as the blank."""
    probs = np.full((len(path), NCLS), (1 - p) / (NCLS - 1), np.float32)
    for i, c in enumerate(path):
        probs[i, NCLS - 1 if c == "-" else ALPHABET.index(c)] = p
    return probs


def test_ctc_collapses_repeats_and_drops_blanks():
    paths = ["AA-A-BB--C", "----------", "1-22-2-333", "ZZZZZZZZZZ", "-5-5-5-5--"]
    out = decode_ctc(np.stack([ctc_probs(p) for p in paths]))
    assert [o[0] for o in out] == ["AABC", "", "1223", "Z", "5555"]
    assert out[1][2] == () and out[0][1] == pytest.approx(0.9)


def test_ctc_confidences_are_per_emitted_character():
    p = ctc_probs("-AA-B-----")
    p[2, ALPHABET.index("A")] = 0.99   # the best step of the A run counts for A
    p[4, :] = 0.01
    p[4, ALPHABET.index("B")] = 0.55   # a doubtful B lowers the plate's confidence
    text, conf, chars = decode_ctc(p[None])[0]
    assert text == "AB"
    assert chars == pytest.approx((0.99, 0.55))
    assert conf == pytest.approx(0.55)


def test_ctc_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        decode_ctc(np.zeros((1, 32, 12), np.float32))



def test_preprocess_shapes_and_gray():
    x = preprocess(np.zeros((40, 90, 3), np.uint8))
    assert x.shape == (3, IMG_H, IMG_W) and x.dtype == np.float32
    assert preprocess(np.full((40, 90), 255, np.uint8)).max() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        preprocess(np.zeros((1, 1, 3), np.uint8))


# ------------------------------------------------------------------ the shipped model
def test_implements_the_protocol(rec):
    assert isinstance(rec, OnnxRecognizer)
    r: PlateRecognizer = rec
    assert r.read([]) == []


def test_reads_rendered_plates(rec):
    """The demo camera draws plates with alprd.synth.render_plate: the shipped model must read them.

    The shipped model reads about 96% of them exactly (its misreads are doubled letters).
    """
    rng = np.random.default_rng(1234)
    texts = [random_plate_text(rng) for _ in range(100)]
    plates = [render_plate(t, rng) for t in texts]
    reads = rec.read(plates)
    assert reads[0].text == texts[0], reads[0]
    good = sum(r.text == t for r, t in zip(reads, texts, strict=True))
    assert good >= 90, [(t, r.text) for r, t in zip(reads, texts, strict=True) if r.text != t]
    assert sum(edit_distance(r.text, t) <= 1 for r, t in zip(reads, texts, strict=True)) >= 98
    for r in reads:
        if r.text:
            assert len(r.char_confidences) == len(r.text)
            assert 0.5 <= r.confidence <= 1.0
            assert r.confidence == pytest.approx(sum(r.char_confidences) / len(r.text))  # their mean


def test_reads_a_small_plate_and_keeps_batch_order(rec):
    rng = np.random.default_rng(7)
    a = render_plate("ABC1234", rng)
    b = render_plate("7XYZ123", rng, height=40)  # a far plate: 80x40 px
    junk = np.zeros(0, np.uint8)
    out = rec.read([a, junk, b])
    assert [o.text for o in out] == ["ABC1234", "", "7XYZ123"]


@pytest.mark.parametrize("junk", [
    np.zeros((0, 0, 3), np.uint8),            # empty
    np.zeros((64, 128, 3), np.float32),       # wrong dtype
    np.full((1, 1, 3), 200, np.uint8),        # 1x1
    np.full((60, 120, 3), 128, np.uint8),     # flat grey image
    np.full((60, 120), 128, np.uint8),        # grey, one channel
    np.zeros((5, 5, 5, 5), np.uint8),         # wrong rank
    None,                                     # not an array at all
])
def test_garbage_gives_an_empty_low_confidence_result(rec, junk):
    out = rec.read([junk])
    assert len(out) == 1 and isinstance(out[0], PlateText)
    assert out[0].text == "" and out[0].char_confidences == ()
    assert out[0].confidence < 0.5


def test_noise_is_not_read_as_a_plate(rec):
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (50, 100, 3), dtype=np.uint8) for _ in range(5)]
    assert all(r.text == "" for r in rec.read(noise))


def test_gray_plate_is_read(rec):
    import cv2

    rng = np.random.default_rng(3)
    gray = cv2.cvtColor(render_plate("KLM4821", rng), cv2.COLOR_BGR2GRAY)
    assert rec.read([gray])[0].text == "KLM4821"


# ------------------------------------------------------------------ model errors
def test_missing_model_names_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError) as e:
        OnnxRecognizer(missing)
    assert str(missing) in str(e.value) and "train_ocr.py" in str(e.value)


def test_corrupt_model_names_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "plate_ocr.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf" * 10)
    with pytest.raises(ModelError) as e:
        OnnxRecognizer(bad)
    assert str(bad) in str(e.value) and "git checkout" in str(e.value)


def test_model_of_the_wrong_shape_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 128])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 64, 128])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "identity.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="expected"):
        OnnxRecognizer(path)


def test_reads_carry_candidates_and_the_region_whose_syntax_they_fit():
    rng = np.random.default_rng(5)
    br = OnnxRecognizer(MODEL, threads=1, regions=["br"], top_n=3)
    fits, odd = br.read([render_plate("ABC1234", rng), render_plate("7XY12", rng)])
    assert (fits.text, fits.region, fits.format_ok) == ("ABC1234", "br", True)
    assert 1 <= len(fits.candidates) <= 3 and fits.candidates[0][0] == "ABC1234"
    assert [p for _, p in fits.candidates] == sorted((p for _, p in fits.candidates), reverse=True)
    # a reading that fits no configured syntax is kept as read, flagged
    assert (odd.text, odd.region, odd.format_ok) == ("7XY12", None, False)
    plain = OnnxRecognizer(MODEL, threads=1).read([render_plate("7XY12", rng)])[0]
    assert plain.text == "7XY12" and plain.region is None and plain.format_ok


# ------------------------------------------------------------------ the second read
def test_second_views_are_four_other_cuts_of_the_crop():
    crop = np.arange(40 * 100 * 3, dtype=np.uint32).reshape(40, 100, 3).astype(np.uint8)
    loose5, loose10, less_left, less_right = second_views(crop)
    assert loose5.shape == (44, 110, 3) and loose10.shape == (48, 120, 3)
    assert np.array_equal(loose5[2:42, 5:105], crop) and np.array_equal(loose10[4:44, 10:110], crop)
    assert np.array_equal(loose5[0, 5:105], crop[0]) and np.array_equal(loose5[2:42, 0], crop[:, 0])  # edges repeated
    assert np.array_equal(less_left, crop[:, 3:]) and np.array_equal(less_right, crop[:, :97])


def _read(text: str, conf: float, *candidates: tuple[str, float]) -> PlateText:
    return PlateText(text, conf, (conf,) * len(text), candidates or ((text, conf),) if text else ())


def test_fuse_reads_sums_the_views_candidates_over_the_texts_they_chose():
    first = _read("1ABC123", 0.90, ("1ABC123", 0.5), ("ABC123", 0.35))
    views = [_read("ABC123", 0.93, ("ABC123", 0.4), ("1ABC123", 0.1)), _read("ABC123", 0.80, ("ABC123", 0.2)),
             _read("1ABC123", 0.95, ("1ABC123", 0.3)), _read("", 0.2)]
    fused = fuse_reads([first, *views])
    assert fused is views[0]  # ABC123: 0.35 + 0.4 + 0.2 against 0.5 + 0.1 + 0.3; its most confident view
    # a candidate that no view chose does not win, however likely
    assert fuse_reads([first, _read("1ABC123", 0.9, ("XYZ", 0.9), ("1ABC123", 0.1))]).text == "1ABC123"
    # a tie keeps the first look's text; nothing read keeps the first look
    assert fuse_reads([_read("AAA111", 0.9, ("AAA111", 0.4)), _read("AAA11", 0.99, ("AAA11", 0.4))]).text == "AAA111"
    assert fuse_reads([_read("", 0.1), _read("", 0.3)]).confidence == 0.1


class _Counting:
    """The recogniser's own onnxruntime session, counting its batches."""

    def __init__(self, session):
        self.session, self.batches, self.shapes = session, [], []

    def run(self, outputs, feeds):
        x = next(iter(feeds.values()))
        self.batches.append(len(x))
        self.shapes.append(x.shape)
        return self.session.run(outputs, feeds)


def test_only_unsure_one_line_reads_are_read_again():
    rng = np.random.default_rng(11)
    texts = [random_plate_text(rng) for _ in range(12)]
    plates = [render_plate(t, rng) for t in texts]
    never = OnnxRecognizer(MODEL, threads=1, second_read=0.0)
    first = never.read(plates)
    cut = sorted(r.confidence for r in first if r.text)[len(plates) // 2]  # about half are below it
    again = OnnxRecognizer(MODEL, threads=1, second_read=cut)
    again._session = _Counting(again._session)
    reads = again.read(plates)
    unsure = [i for i, r in enumerate(first) if r.text and r.confidence < cut]
    assert 0 < len(unsure) < len(plates)
    assert again._session.batches == [len(plates), 4 * len(unsure)]
    for i, (a, b) in enumerate(zip(first, reads, strict=True)):
        if i not in unsure:
            assert a == b
        else:  # the fused read is one the views made, never below the drop threshold
            assert b.text and b.confidence >= again.min_confidence
    good = sum(r.text == t for r, t in zip(reads, texts, strict=True))
    assert good >= sum(r.text == t for r, t in zip(first, texts, strict=True)) - 1


def test_two_line_plates_and_dropped_crops_are_not_read_again():
    rng = np.random.default_rng(3)
    stacked = render_plate("ABC123", rng, split=3, height=100)
    noise = rng.integers(0, 256, (50, 100, 3), dtype=np.uint8)
    always = OnnxRecognizer(MODEL, threads=1, second_read=1.0)
    once = OnnxRecognizer(MODEL, threads=1, second_read=0.0)
    always._session = _Counting(always._session)
    assert always.read([stacked, noise]) == once.read([stacked, noise])
    assert len(always._session.batches) == 1


# ------------------------------------------------------------------ wide crops
def test_input_width_widens_only_long_crops():
    assert input_width((40, 100, 3), 3.0) == IMG_W        # a 2.5:1 plate
    assert input_width((40, 120, 3), 3.0) == WIDE_W       # 3:1
    assert input_width((40, 180), 3.0) == WIDE_W          # 4.5:1, grey
    assert input_width((40, 180, 3), 0.0) == IMG_W        # off


def test_long_crops_are_read_at_the_wide_input_in_their_own_batch():
    import cv2

    rng = np.random.default_rng(8)
    short = render_plate("ABC1234", rng)
    long = cv2.resize(render_plate("XY12ZW", rng), (short.shape[1] * 2, short.shape[0]))  # 4:1
    wide = OnnxRecognizer(MODEL, threads=1, wide_aspect=3.0)
    wide._session = _Counting(wide._session)
    mixed = wide.read([short, long, short])
    assert sorted(s[3] for s in wide._session.shapes) == [IMG_W, WIDE_W]
    assert wide._session.batches[:2] == [2, 1] or wide._session.batches[:2] == [1, 2]
    # batching by width keeps every read in its place: the same as reading each crop alone
    assert mixed == [wide.read([short])[0], wide.read([long])[0], wide.read([short])[0]]
    assert mixed[0].text == "ABC1234"
    narrow = OnnxRecognizer(MODEL, threads=1, wide_aspect=0.0)
    narrow._session = _Counting(narrow._session)
    narrow.read([short, long])
    assert narrow._session.shapes == [(2, 3, IMG_H, IMG_W)]
