"""The detector's training script (needs the `train` extra; skipped without PyTorch)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import train_detector as td  # after the sys.path line: it lives in scripts/

MODEL = ROOT / "models" / "plate_detector.onnx"


def test_a_deepened_model_starts_out_computing_what_the_exported_one_does():
    """Fine-tuning a deeper model from plate_detector.onnx must not throw its training away."""
    model = td.PlateNet(extra=2)
    td.deepen_from_onnx(model, str(MODEL))
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in td.PlateNet().parameters())
    image = np.random.default_rng(0).uniform(0, 255, (1, 3, 256, 320)).astype(np.float32)
    expected = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]
    with torch.no_grad():
        got = td.ExportWrapper(model.eval())(torch.from_numpy(image)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_an_onnx_file_of_another_shape_is_refused(tmp_path):
    model = td.PlateNet(extra=1)
    td.deepen_from_onnx(model, str(MODEL))
    td.export_onnx(model, tmp_path / "deep.onnx", 640)
    with pytest.raises(ValueError, match="convolutions"):
        td.deepen_from_onnx(td.PlateNet(), str(tmp_path / "deep.onnx"))


def test_real_plate_crops_are_pasted_with_their_own_proportions():
    """--p-real: a real crop (here a 3:1 one) is pasted whole and labelled with its own box."""
    crop = np.zeros((20, 60, 3), np.uint8)
    crop[:, :, 1] = 200
    background = np.full((1, 256, 256, 3), 90, np.uint8)
    ds = td.TrainSet(background, [np.zeros((0, 4), np.float32)], 256, 1, p_synth_frame=0, p_mosaic=0, p_paste=0,
                     real_plates=[crop], p_real=1.0)
    ds.rng = np.random.default_rng(3)
    img = background[0].copy()
    boxes = ds._paste_small(img, np.zeros((0, 4), np.float32), ds.rng)
    assert len(boxes) >= 1
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    plain = w / h  # pasted as they are, or on a rendered car body (a box around the plate)
    assert np.all((plain > 3 * 0.8) & (plain < 3 * 1.25))
    for x1, y1, x2, y2 in boxes.astype(int):
        centre = img[(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
        assert centre[1] > centre[2] + 40  # the crop's green is where its box says (on grey)


def test_a_square_part_of_a_wide_photo_keeps_its_proportions():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 150:] = 255
    parts = [td.square_crop(wide, 64, np.random.default_rng(seed)) for seed in range(20)]
    assert all(p.shape == (64, 64, 3) for p in parts)
    # a window of the photo, not the photo squashed: some parts lie wholly in one half
    assert any(p.max() == 0 for p in parts) and any(p.min() == 255 for p in parts)
    assert td.square_crop(None, 64, np.random.default_rng(0)) is None


def test_the_text_teachers_map_moves_with_the_photo():
    """--text-teacher: the teacher's map of a photo is warped with it, onto the crop's stride-4 grid,
    and its weight is zero where the teacher never looked (rendered plates pasted on afterwards)."""
    photo = np.full((1, 256, 256, 3), 90, np.uint8)
    tmap = np.zeros((1, 64, 64), np.uint8)
    tmap[0, 30:34, 20:28] = 255  # "text" at photo pixels x 80-112, y 120-136
    ds = td.TrainSet(photo, [np.zeros((0, 4), np.float32)], 128, 1, p_synth_frame=0, p_mosaic=0, p_paste=0,
                     text_maps=tmap)
    ds.rng = np.random.default_rng(0)
    M = np.array([[0.5, 0, 10], [0, 0.5, 4]])  # halve, then move by (10, 4)
    warped = td.text_teacher.warp_map(tmap[0], M, 128, 128)
    assert warped.shape == (32, 32)
    ys, xs = np.nonzero(warped > 0.5)
    assert abs((xs.mean() + 0.5) * 4 - (0.5 * 96 + 10)) <= 3 and abs((ys.mean() + 0.5) * 4 - (0.5 * 128 + 4)) <= 3
    *_, text, weight = ds[0]
    assert text.shape == weight.shape == (1, 32, 32) and float(weight.min()) == 1.0  # a real photo: all taught
    ds.p_paste = 1.0
    *_, text, weight = ds[0]
    assert 0 < float(weight.mean()) < 1  # the pasted plates are not
    ds.p_synth_frame = 1.0
    *_, text, weight = ds[0]
    assert float(weight.max()) == 0.0  # nor is a rendered frame
