"""The detector's second stage: context crops, the shipped verifier model, the cascade, the config switch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from alprd import synth
from alprd.config import VisionConfig
from alprd.vision import load_reader
from alprd.vision.base import Detection, ModelError, PlateDetector
from alprd.vision.detector import OnnxDetector
from alprd.vision.evaluate import iou
from alprd.vision.verifier import (
    CROP_H,
    CROP_W,
    PAD_VALUE,
    SECOND_LOOK_SCALES,
    OnnxVerifier,
    VerifiedDetector,
    apply_deltas,
    context_crop,
    scale_boxes,
)
from alprd.vision.zoom import ZoomedDetector

MODELS = Path(__file__).resolve().parent.parent / "models"
VERIFIER = MODELS / "plate_verifier.onnx"


@pytest.fixture(scope="module")
def verifier() -> OnnxVerifier:
    return OnnxVerifier(VERIFIER)


@pytest.fixture(scope="module")
def scene():
    """A 1920x1080 demo-camera frame with one car and a 120 px plate, and the plate's box."""
    rng = np.random.default_rng(99)
    frame = synth.street_scene(1920, 1080, rng)
    box = synth.paste_plate_on_car(frame, synth.render_plate("4KXP271", rng), (900, 800), 120, rng)
    return frame, tuple(float(v) for v in box)


def test_context_crop_centres_the_box_with_surroundings():
    image = np.zeros((200, 300, 3), np.uint8)
    image[80:120, 100:180] = 255  # an 80x40 white "plate"
    crop = context_crop(image, (100, 80, 180, 120))
    assert crop.shape == (CROP_H, CROP_W, 3) and crop.dtype == np.uint8
    assert crop[CROP_H // 2, CROP_W // 2].min() == 255  # the box is in the middle
    assert crop[0, 0].max() == 0 and crop[-1, -1].max() == 0  # with dark surroundings around it
    white = (crop[:, :, 0] > 127).mean()
    assert 0.2 < white < 0.6  # box 80x40 in a 120x80 region: a third of the crop


def test_context_crop_pads_outside_the_image_with_grey():
    image = np.full((100, 100, 3), 255, np.uint8)
    crop = context_crop(image, (-60, -30, -20, -10))  # wholly outside
    assert (crop == PAD_VALUE).all()
    crop = context_crop(image, (80, 40, 120, 60))  # half outside on the right
    assert crop[CROP_H // 2, 5].min() == 255 and (crop[CROP_H // 2, -5] == PAD_VALUE).all()


def test_shipped_verifier_tells_a_plate_from_background(verifier, scene):
    frame, box = scene
    w, h = box[2] - box[0], box[3] - box[1]
    sky = (300.0, 60.0, 300 + w, 60 + h)
    road_far_from_car = (1600.0, 1000.0, 1600 + w, 1000 + h)
    plate, *others = verifier.score(frame, [box, sky, road_far_from_car])
    assert plate >= 0.5
    assert max(others) < 0.5
    assert verifier.score(frame, []).shape == (0,)


def test_cascade_keeps_the_plate_and_drops_candidates(verifier, scene):
    frame, box = scene
    candidates = OnnxDetector(MODELS / "plate_detector.onnx", score_threshold=0.05)
    cascade: PlateDetector = VerifiedDetector(candidates, verifier, threshold=0.5)
    proposed = candidates.detect(frame)
    kept = cascade.detect(frame)
    assert kept and all(isinstance(d, Detection) and 0.5 <= d.score <= 1.0 for d in kept)
    fused = verifier.combine(np.array([d.score for d in proposed]),
                             verifier.score(frame, [(d.x1, d.y1, d.x2, d.y2) for d in proposed]))
    for d in kept:  # each kept score is the fitted fusion of one candidate's two scores
        assert np.isclose(fused, d.score, rtol=1e-5).any()
    assert kept == sorted(kept, key=lambda d: -d.score)
    assert len(kept) < len(proposed)  # at 0.05 the detector proposes clutter; the verifier drops it
    best = kept[0]
    assert abs((best.x1 + best.x2) / 2 - (box[0] + box[2]) / 2) < 10
    assert cascade.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError):
        VerifiedDetector(candidates, verifier, threshold=1.5)


def test_apply_deltas_moves_each_side_in_box_units():
    boxes = np.array([[100, 50, 200, 100], [0, 0, 0.5, 0.5]], np.float32)
    assert (apply_deltas(boxes, np.zeros((2, 4), np.float32)) == boxes).all()
    moved = apply_deltas(boxes, np.array([[-0.1, 0.2, 0.1, -0.2]] * 2, np.float32))
    assert moved[0].tolist() == pytest.approx([90, 60, 210, 90])
    assert moved[1].tolist() == pytest.approx([-0.1, 0.2, 0.6, 0.3])  # a degenerate box moves by at least 1 px units


class FixedBoxes:
    """A candidate stage that proposes the same boxes for every image (a PlateDetector)."""

    def __init__(self, boxes: list[tuple[float, float, float, float, float]]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(*b) for b in self.boxes]


def test_cascade_corrects_boxes_and_merges_duplicates(verifier, scene):
    frame, (x1, y1, x2, y2) = scene
    w, h = x2 - x1, y2 - y1
    shifted = [(x1 + 0.12 * w, y1 - 0.15 * h, x2 + 0.12 * w, y2 - 0.15 * h, 0.6),  # two sloppy boxes on the plate
               (x1 - 0.1 * w, y1 + 0.1 * h, x2 - 0.05 * w, y2 + 0.2 * h, 0.5)]
    kept = VerifiedDetector(FixedBoxes(shifted), verifier, threshold=0.3).detect(frame)
    assert len(kept) == 1  # one plate, one box
    got = iou((kept[0].x1, kept[0].y1, kept[0].x2, kept[0].y2), (x1, y1, x2, y2))
    assert got > max(iou(b[:4], (x1, y1, x2, y2)) for b in shifted)  # the box head moved it onto the plate
    assert got >= 0.7


def test_fusion_rises_with_either_score_and_is_a_probability(verifier):
    a, b, _ = verifier.fusion
    assert a > 0 and b > 0  # fitted on held-out images: both models carry evidence
    det = np.array([0.1, 0.1, 0.6, 0.6, 0.0, 1.0], np.float32)
    ver = np.array([0.1, 0.9, 0.1, 0.9, 0.0, 1.0], np.float32)
    p = verifier.combine(det, ver)
    assert p.shape == (6,) and ((p > 0) & (p < 1)).all()  # clipped, so 0 and 1 stay finite
    assert p[0] < p[1] < p[3] and p[0] < p[2] < p[3]


def _with_metadata(src: Path, dst: Path, **meta: str) -> Path:
    model = onnx.load(str(src))
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(dst))
    return dst


def test_fusion_metadata_is_read_and_checked(tmp_path):
    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(VERIFIER))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    assert OnnxVerifier(bare).fusion == (0.5, 0.5, 0.0)  # no fitted fusion: the mean of the log-odds
    assert OnnxVerifier(_with_metadata(bare, tmp_path / "fit.onnx", fusion="2 0.5 -1")).fusion == (2.0, 0.5, -1.0)
    for bad in ("1 2", "a b c"):
        with pytest.raises(ModelError, match="fusion"):
            OnnxVerifier(_with_metadata(bare, tmp_path / "bad.onnx", fusion=bad))


def test_bad_verifier_files_raise_model_error(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError) as err:
        OnnxVerifier(missing)
    assert str(missing) in str(err.value) and "train_verifier.py" in str(err.value)
    corrupt = tmp_path / "plate_verifier.onnx"
    corrupt.write_bytes(VERIFIER.read_bytes()[:3000])
    with pytest.raises(ModelError, match="could not be loaded"):
        OnnxVerifier(corrupt)
    with pytest.raises(ModelError, match="expected"):
        OnnxVerifier(MODELS / "plate_ocr.onnx")  # a real model, but not a verifier


def test_config_switches_the_verifier_on_and_off(tmp_path):
    on = load_reader(VisionConfig())
    assert isinstance(on.detector, VerifiedDetector)
    assert VisionConfig().model_files()["verifier"] == VERIFIER
    off_cfg = VisionConfig(verifier_model="", zoom_window=[])
    assert off_cfg.verifier_model is None and "verifier" not in off_cfg.model_files()
    assert isinstance(load_reader(off_cfg).detector, OnnxDetector)
    assert isinstance(on.detector.candidates, ZoomedDetector)  # vision.zoom_window
    assert on.detector.candidates.inner.input_size == 768  # vision.detector_input
    model_size = load_reader(VisionConfig(verifier_model="", detector_input=0, zoom_window=[])).detector.input_size
    assert model_size == 640  # the model's own
    with pytest.raises(ModelError):
        load_reader(VisionConfig(verifier_model=str(tmp_path / "gone.onnx")))


def test_a_mirrored_look_is_the_look_at_the_mirrored_frame(verifier, scene):
    frame, box = scene
    w = frame.shape[1]
    boxes = [box, (300.0, 60.0, 420.0, 100.0)]
    mirrored, returned = verifier.assess(frame, boxes, mirrored=True)
    flipped = np.ascontiguousarray(frame[:, ::-1])
    direct = verifier.score(flipped, [(w - b[2], b[1], w - b[0], b[3]) for b in boxes])
    np.testing.assert_allclose(mirrored, direct, atol=0.02)  # the same pixels, up to the crop's rounding
    np.testing.assert_allclose(returned, np.array(boxes, np.float32))  # no box correction from a mirrored look
    assert mirrored[0] >= 0.5 > mirrored[1]


def test_scale_boxes_keeps_the_centre():
    boxes = np.array([[10, 20, 110, 60], [0, 0, 4, 2]], np.float32)
    np.testing.assert_allclose(scale_boxes(boxes, 1.5), [[-15, 10, 135, 70], [-1, -0.5, 5, 2.5]])
    np.testing.assert_allclose(scale_boxes(boxes, 1.0), boxes)


def test_candidates_near_the_threshold_get_a_second_look_from_other_views(verifier, scene):
    frame, (x1, y1, x2, y2) = scene
    w, h = x2 - x1, y2 - y1  # a loose box on the plate (an unsure first look), and a patch of sky
    boxes = [(x1 - 0.3 * w, y1 - 0.4 * h, x2 + 0.2 * w, y2 + 0.5 * h, 0.6), (300.0, 60.0, 420.0, 100.0, 0.05)]
    once = VerifiedDetector(FixedBoxes(boxes), verifier, threshold=0.3).detect(frame)
    twice = VerifiedDetector(FixedBoxes(boxes), verifier, threshold=0.3, second_look=0.2).detect(frame)
    assert len(once) == len(twice) == 1
    first = np.array([b[:4] for b in boxes[:1]], np.float32)
    p, _ = verifier.assess(frame, first)
    looks = [p, verifier.assess(frame, first, mirrored=True)[0]]
    looks += [verifier.assess(frame, scale_boxes(first, f))[0] for f in SECOND_LOOK_SCALES]
    looks = [np.clip(q.astype(np.float64), 1e-4, 1 - 1e-4) for q in looks]  # as the cascade bounds them
    mean = 1 / (1 + np.exp(-np.mean([np.log(q / (1 - q)) for q in looks], axis=0)))
    assert twice[0].score == pytest.approx(float(verifier.combine(np.array([0.6]), mean)[0]), rel=1e-5)
    assert once[0].score == pytest.approx(float(verifier.combine(np.array([0.6]), p)[0]), rel=1e-5)
    assert abs(twice[0].score - once[0].score) > 1e-3  # the second look changed it
    assert (twice[0].x1, twice[0].y1) == (once[0].x1, once[0].y1)  # boxes from the first look only
