"""Detect, crop and read: one frame in, plate sightings out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alprd.vision.base import Detection, PlateDetector, PlateRecognizer


@dataclass(frozen=True)
class Sighting:
    """One plate read in one frame."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    detection: Detection
    crop: np.ndarray
    candidates: tuple[tuple[str, float], ...] = ()
    region: str | None = None
    format_ok: bool = True


def crop_plate(image: np.ndarray, det: Detection, pad: float = 0.08) -> np.ndarray:
    """Cut the box out with a small margin so that edge characters survive a tight box."""
    h, w = image.shape[:2]
    px, py = det.width * pad, det.height * pad
    x1, y1 = max(0, int(det.x1 - px)), max(0, int(det.y1 - py))
    x2, y2 = min(w, int(np.ceil(det.x2 + px))), min(h, int(np.ceil(det.y2 + py)))
    return image[y1:y2, x1:x2]


class PlateReader:
    """Runs a detector then a recogniser on every plate of a frame, in one batch."""

    def __init__(self, detector: PlateDetector, recognizer: PlateRecognizer, min_chars: int = 2):
        self.detector = detector
        self.recognizer = recognizer
        self.min_chars = min_chars

    def read(self, image: np.ndarray) -> list[Sighting]:
        dets = [d for d in self.detector.detect(image) if d.width >= 2 and d.height >= 2]
        if not dets:
            return []
        crops = [crop_plate(image, d) for d in dets]
        texts = self.recognizer.read(crops)
        return [
            Sighting(t.text, t.confidence, t.char_confidences, d, c, t.candidates, t.region, t.format_ok)
            for d, c, t in zip(dets, crops, texts, strict=True)
            if len(t.text) >= self.min_chars
        ]
