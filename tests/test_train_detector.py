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
