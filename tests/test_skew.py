"""Levelling plates seen from the side (alprd.vision.skew) and the reader's use of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alprd.config import VisionConfig
from alprd.synth import render_plate, side_view
from alprd.vision.ocr import OnnxRecognizer
from alprd.vision.skew import level, text_slope

MODEL = Path(__file__).resolve().parents[1] / "models" / "plate_ocr.onnx"


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    return render_plate("7KQM482", np.random.default_rng(3))


def test_a_level_plate_has_no_slope_and_is_left_alone(plate):
    assert text_slope(plate) == 0.0
    assert level(plate, 3.5) is plate


@pytest.mark.parametrize("degrees", [-15.0, -8.0, 8.0, 15.0])
def test_the_slope_of_a_plate_seen_from_the_side_is_found_with_its_sign(plate, degrees):
    found = np.degrees(np.arctan(text_slope(side_view(plate, degrees))))
    assert abs(found - degrees) <= 2.0


def test_levelling_shears_the_rows_flat_and_trims_what_the_slope_added(plate):
    crop = side_view(plate, 12.0)
    flat = level(crop, 3.5)
    assert flat.shape[1] == crop.shape[1] and flat.shape[0] < crop.shape[0]
    assert abs(text_slope(flat)) <= np.tan(np.radians(2.0))


def test_below_the_threshold_off_or_not_an_image_the_crop_comes_back_as_is(plate):
    slight = side_view(plate, 5.0)
    assert level(slight, 8.0) is slight
    assert level(slight, 0.0) is slight
    bgra = np.dstack([plate, np.full(plate.shape[:2], 255, np.uint8)])
    for bad in (np.zeros((4, 4, 3), np.uint8), np.zeros((30, 60, 3), np.float32), "crop", bgra,
                np.zeros((30,), np.uint8)):
        assert level(bad, 3.5) is bad


def test_the_reader_levels_a_side_view_before_reading_it(plate):
    crop = side_view(plate, 14.0)
    levelled = OnnxRecognizer(MODEL, threads=1, min_confidence=0.0, level_degrees=3.5)
    (read,) = levelled.read([crop])
    assert read.text == "7KQM482"
    # the same as reading the levelled crop with levelling off: the reader reads what level() gives
    (direct,) = OnnxRecognizer(MODEL, threads=1, min_confidence=0.0).read([level(crop, 3.5)])
    assert read == direct


def test_levelling_is_on_by_default():
    assert VisionConfig().ocr_level_degrees == 3.5
