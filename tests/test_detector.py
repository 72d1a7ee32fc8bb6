"""The shipped ONNX plate detector: loads, finds plates, maps boxes back, fails clearly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from alprd import synth
from alprd.config import VisionConfig
from alprd.vision import load_detector
from alprd.vision.base import Detection, ModelError, PlateDetector
from alprd.vision.detector import OnnxDetector, letterbox
from alprd.vision.zoom import ZoomedDetector

MODEL = Path(__file__).resolve().parent.parent / "models" / "plate_detector.onnx"


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def best_iou(dets: list[Detection], box) -> float:
    return max((iou((d.x1, d.y1, d.x2, d.y2), box) for d in dets), default=0.0)


@pytest.fixture(scope="module")
def detector() -> OnnxDetector:
    return OnnxDetector(MODEL, threads=1)


@pytest.fixture(scope="module")
def scene():
    """A 1920x1080 demo-camera frame with one car and a 150 px plate."""
    rng = np.random.default_rng(1234)
    frame = synth.street_scene(1920, 1080, rng)
    plate = synth.render_plate("7ABC123", rng)
    box = synth.paste_plate_on_car(frame, plate, (1100, 760), 150, rng)
    return frame, np.array(box, np.float64)


def test_is_a_plate_detector(detector):
    det: PlateDetector = detector
    assert callable(det.detect)
    assert detector.stride == 4 and detector.input_size % 32 == 0


def test_finds_plate_in_synthetic_scene(detector, scene):
    frame, box = scene
    dets = detector.detect(frame)
    assert dets, "no plate found in the synthetic scene"
    assert all(isinstance(d, Detection) and 0.4 <= d.score <= 1.0 for d in dets)
    assert dets == sorted(dets, key=lambda d: -d.score)
    assert best_iou(dets, box) >= 0.6
    assert len(dets) <= 3  # one plate; no flood of false positives


@pytest.mark.parametrize("variant", ["resize_half", "resize_up", "pad_square", "portrait_crop", "pad_wide"])
def test_boxes_map_back_to_original_pixels(detector, scene, variant):
    frame, box = scene
    if variant == "resize_half":  # 960x540
        img, b = cv2.resize(frame, (960, 540), interpolation=cv2.INTER_AREA), box / 2
    elif variant == "resize_up":  # 2560x1440
        img, b = cv2.resize(frame, (2560, 1440), interpolation=cv2.INTER_LINEAR), box * (2560 / 1920)
    elif variant == "pad_square":  # frame at (0, 420) in a 1920x1920 grey square
        img = np.full((1920, 1920, 3), 90, np.uint8)
        img[420:1500] = frame
        b = box + [0, 420, 0, 420]
    elif variant == "portrait_crop":  # 700x1000 portrait cut around the plate
        ox, oy = 700, 80
        img, b = np.ascontiguousarray(frame[oy:oy + 1000, ox:ox + 700]), box - [ox, oy, ox, oy]
    else:  # 3000x1080, frame shifted right
        img = np.full((1080, 3000, 3), 90, np.uint8)
        img[:, 1080:] = frame
        b = box + [1080, 0, 1080, 0]
    dets = detector.detect(img)
    assert best_iou(dets, b) >= 0.5, (variant, b, dets[:3])
    h, w = img.shape[:2]
    for d in dets:
        assert 0 <= d.x1 < d.x2 <= w and 0 <= d.y1 < d.y2 <= h


def test_decode_maps_cells_to_original_pixels(detector):
    """Independent of what the network learnt: one peak must come back as the box it encodes."""
    for (w, h) in [(1920, 1080), (640, 640), (720, 1280), (333, 101)]:
        canvas, scale = letterbox(np.zeros((h, w, 3), np.uint8), detector.input_size)
        assert canvas.shape[0] % 32 == 0 and canvas.shape[1] % 32 == 0
        assert max(round(w * scale), round(h * scale)) == detector.input_size
        fh, fw = canvas.shape[0] // 4, canvas.shape[1] // 4
        out = np.zeros((1, 5, fh, fw), np.float32)
        i, j = fh // 3, fw // 2
        out[0, 0, i, j] = 0.9
        out[0, 1:, i, j] = [10, 5, 12, 6]  # left, top, right, bottom in input pixels
        dets = detector.decode(out, scale, w, h)
        assert len(dets) == 1
        cx, cy = (j + 0.5) * 4, (i + 0.5) * 4
        want = np.array([cx - 10, cy - 5, cx + 12, cy + 6]) / scale
        got = np.array([dets[0].x1, dets[0].y1, dets[0].x2, dets[0].y2])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
        assert dets[0].score == pytest.approx(0.9)


def test_odd_inputs(detector):
    assert isinstance(detector.detect(np.zeros((10, 10, 3), np.uint8)), list)
    gray = np.full((480, 640), 128, np.uint8)
    assert isinstance(detector.detect(gray), list)
    with pytest.raises(ValueError):
        detector.detect(np.zeros((100, 100, 3), np.float32))


def test_missing_model_raises_model_error(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelError) as err:
        OnnxDetector(path)
    msg = str(err.value)
    assert str(path) in msg and "not found" in msg and "train_detector.py" in msg


def test_corrupt_model_raises_model_error(tmp_path):
    path = tmp_path / "plate_detector.onnx"
    path.write_bytes(MODEL.read_bytes()[:5000])  # truncated download
    with pytest.raises(ModelError) as err:
        OnnxDetector(path)
    assert str(path) in str(err.value) and "corrupt" in str(err.value)
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError):
        OnnxDetector(path)


def test_wrong_model_raises_model_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "ocr_by_mistake.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError) as err:
        OnnxDetector(path)
    assert "wrong inputs/outputs" in str(err.value)


def test_a_larger_input_size_is_used_only_as_far_as_the_image_has_pixels(scene):
    big = OnnxDetector(MODEL, input_size=768)  # what vision.detector_input asks for by default
    frame, box = scene

    def net_input(h: int, w: int) -> tuple[int, int]:
        return big.preprocess(np.zeros((h, w, 3), np.uint8))[0].shape[2:]

    assert net_input(1080, 1920) == (448, 768)  # a camera frame is scaled down to 768
    assert net_input(640, 640) == (640, 640)  # a photo of the model's own size is not enlarged
    assert net_input(500, 700) == (512, 704)  # 700 px wide: its own pixels, padded to 32
    assert net_input(100, 300) == (224, 640)  # a small image still goes up to the model's 640
    dets = big.detect(frame)
    assert best_iou(dets, box) >= 0.6
    h, w = frame.shape[:2]
    assert all(0 <= d.x1 < d.x2 <= w and 0 <= d.y1 < d.y2 <= h for d in dets)


def _distant_plates_found(det, n: int = 10) -> int:
    """How many of n 14 px plates near the middle of a 1080p frame ``det`` finds (IoU >= 0.5)."""
    found = 0
    for seed in range(n):
        rng = np.random.default_rng(seed)
        frame = synth.street_scene(1920, 1080, rng)
        box = synth.paste_plate_on_car(frame, synth.render_plate("7ABC123", rng), (960 + 20 * seed, 560), 14, rng)
        found += best_iou(det.detect(frame), box) >= 0.5
    return found


def test_zoomed_pass_finds_distant_plates_the_whole_frame_pass_misses(detector):
    """A 14 px plate near the middle of a 1080p frame is 6 px at the 768 input: only the zoomed pass sees it."""
    window = tuple(VisionConfig().zoom_window)
    assert _distant_plates_found(OnnxDetector(MODEL, input_size=768)) <= 2
    assert _distant_plates_found(ZoomedDetector(OnnxDetector(MODEL, input_size=768), window)) >= 8


def test_the_zoomed_pass_runs_at_its_own_input_size():
    """vision.zoom_input: the window at 320 is scaled down more than the whole frame at 768, so the plates are lost."""
    cfg = VisionConfig(verifier_model="", detect_threshold=0.4, zoom_input=320)
    det = load_detector(cfg)
    assert (det.inner.input_size, det.zoomed.input_size) == (768, 320)
    assert _distant_plates_found(det) <= 2
    default = load_detector(VisionConfig(verifier_model=""))
    assert default.zoomed is default.inner  # zoom_input 0: the same session runs both passes


def test_zoomed_pass_keeps_a_plate_both_passes_find_once(scene):
    frame, box = scene  # the plate lies inside the window too
    dets = ZoomedDetector(OnnxDetector(MODEL, input_size=768), (0.25, 0.25, 0.75, 0.75)).detect(frame)
    assert best_iou(dets, box) >= 0.6
    assert sum(iou((d.x1, d.y1, d.x2, d.y2), box) > 0.3 for d in dets) == 1
    assert dets == sorted(dets, key=lambda d: -d.score)


@pytest.mark.parametrize("window", [(0.5, 0.2, 0.4, 0.8), (0.1, 0.1, 1.2, 0.9), (0.3, 0.3, 0.3, 0.6)])
def test_zoom_window_outside_the_frame_is_refused(detector, window):
    with pytest.raises(ValueError, match="zoom window"):
        ZoomedDetector(detector, window)
