"""The rule that drops the EU band's letter from teacher-read labels (scripts/clean_band_labels.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import clean_band_labels as cbl  # after the sys.path line: it lives in scripts/


def plate(band: bool) -> np.ndarray:
    """A 40x200 white plate with black characters from x = 25, and a blue band (x < 20) carrying a white letter."""
    img = np.full((40, 200, 3), 255, np.uint8)
    if band:
        img[:, :20] = (180, 60, 20)  # BGR blue
        cv2.putText(img, "D", (4, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    for i, c in enumerate("AB123"):
        cv2.putText(img, c, (25 + 30 * i, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    return img


def test_a_letter_read_inside_the_blue_band_is_the_bands():
    assert cbl.is_band_letter(plate(band=True), "D", 0.05)


def test_the_plates_own_first_character_is_kept():
    assert not cbl.is_band_letter(plate(band=True), "A", 0.2)  # after the band
    assert not cbl.is_band_letter(plate(band=False), "A", 0.06)  # a tight crop without a band
    assert not cbl.is_band_letter(plate(band=False), "O", 0.2)


def test_an_o_on_the_blue_stars_is_the_band():
    img = plate(band=False)
    img[:, 10:40] = (180, 60, 20)
    assert cbl.is_band_letter(img, "O", 0.125)
    assert not cbl.is_band_letter(img, "Q", 0.125)
