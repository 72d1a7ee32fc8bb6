"""Plate detection and recognition. Knows no database and no network.

Only numpy, OpenCV and onnxruntime are needed here, so that training and
evaluation scripts can use this package on machines without the daemon's
other dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alprd.vision.reader import PlateReader

if TYPE_CHECKING:
    from alprd.config import VisionConfig
    from alprd.vision.base import PlateDetector


def load_detector(cfg: VisionConfig) -> PlateDetector:
    """The configured ONNX detector, with its zoomed pass and verifier if set (what the daemon and benchmarks run)."""
    from alprd.vision.detector import OnnxDetector

    alone = cfg.verifier_model is None

    def onnx_detector(input_size: int) -> OnnxDetector:
        return OnnxDetector(cfg.detector_model, threads=cfg.threads, input_size=input_size or None,
                            score_threshold=cfg.detect_threshold if alone else cfg.candidate_threshold)

    detector: PlateDetector = onnx_detector(cfg.detector_input)
    if cfg.zoom_window:
        from alprd.vision.zoom import ZoomedDetector

        zoomed = onnx_detector(cfg.zoom_input) if cfg.zoom_input not in (0, cfg.detector_input) else None
        detector = ZoomedDetector(detector, tuple(cfg.zoom_window), zoomed=zoomed)
    if not alone:
        from alprd.vision.verifier import OnnxVerifier, VerifiedDetector

        detector = VerifiedDetector(detector, OnnxVerifier(cfg.verifier_model, threads=cfg.threads),
                                    threshold=cfg.detect_threshold, second_look=cfg.verifier_second_look)
    return detector


def load_reader(cfg: VisionConfig) -> PlateReader:
    """The configured detector and recogniser, ready to read frames."""
    from alprd.vision.ocr import OnnxRecognizer

    recognizer = OnnxRecognizer(cfg.ocr_model, threads=cfg.threads, min_confidence=cfg.ocr_min_confidence,
                                regions=cfg.regions, top_n=cfg.candidates, second_read=cfg.ocr_second_read,
                                wide_aspect=cfg.ocr_wide_aspect, level_degrees=cfg.ocr_level_degrees)
    return PlateReader(load_detector(cfg), recognizer, min_chars=cfg.min_plate_chars)
