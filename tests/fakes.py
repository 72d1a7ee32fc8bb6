"""Small stand-ins for the ONNX models, for pipeline tests that must not depend on them.

The fake detector finds the plate that ``alprd.synth.paste_plate_on_car`` drew by
looking for the rectangle the synthetic source tells it about; the fake
recogniser returns the text the synthetic source put there. Both can be made
slow to exercise back-pressure.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from alprd.vision.base import Detection, PlateText
from alprd.vision.reader import PlateReader


class FakeDetector:
    """Reports a box around each blob whose red channel is 255 (see ``draw_marked_plate``)."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        mask = (image[:, :, 2] == 255).astype(np.uint8)
        n, _, boxes, _ = cv2.connectedComponentsWithStats(mask)
        return [Detection(float(x), float(y), float(x + w), float(y + h), 0.9)
                for x, y, w, h, _ in boxes[1:n]]


class FakeRecognizer:
    """Reads the text encoded in the crop's middle row (see ``draw_marked_plate``); needs a black background."""

    def read(self, crops):
        out = []
        for crop in crops:
            codes = crop[crop.shape[0] // 2, :, 1]
            text = bytes(int(c) for c in codes if 48 <= c <= 90).decode()
            conf = float(crop[crop.shape[0] // 2, :, 0].max()) / 255
            out.append(PlateText(text, conf, tuple([conf] * len(text))))
        return out


def draw_marked_plate(image: np.ndarray, text: str, x: int, y: int, confidence: float = 0.9) -> None:
    """Paint a magenta box whose middle row encodes ``text`` for the fakes above."""
    w, h = 40, 12
    image[y:y + h, x:x + w] = (255, 0, 255)
    row = image[y + h // 2, x:x + w]
    row[:, 1] = 0
    row[: len(text), 1] = np.frombuffer(text.encode(), np.uint8)
    row[:, 0] = int(confidence * 255)


def fake_reader(delay_s: float = 0.0) -> PlateReader:
    return PlateReader(FakeDetector(delay_s), FakeRecognizer(), min_chars=2)
