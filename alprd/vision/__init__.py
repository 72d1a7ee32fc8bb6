"""Plate detection and recognition. Knows no database and no network."""

from __future__ import annotations

from alprd.config import VisionConfig
from alprd.vision.reader import PlateReader


def load_reader(cfg: VisionConfig) -> PlateReader:
    """The configured ONNX detector and recogniser, ready to read frames."""
    from alprd.vision.detector import OnnxDetector
    from alprd.vision.ocr import OnnxRecognizer

    detector = OnnxDetector(cfg.detector_model, threads=cfg.threads, score_threshold=cfg.detect_threshold)
    recognizer = OnnxRecognizer(cfg.ocr_model, threads=cfg.threads, min_confidence=cfg.ocr_min_confidence)
    return PlateReader(detector, recognizer, min_chars=cfg.min_plate_chars)
