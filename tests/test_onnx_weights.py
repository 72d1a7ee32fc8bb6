"""Starting training from a shipped ONNX file, and averaging ONNX weights (scripts/)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import average_onnx  # after the sys.path line: it lives in scripts/

DETECTOR = ROOT / "models" / "plate_detector.onnx"


def run(model: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def perturbed(tmp_path: Path) -> Path:
    """The detector with every float weight moved by a fixed amount (a second 'fine-tune')."""
    m = onnx.load(DETECTOR)
    for i, t in enumerate(m.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array((a + 0.01).astype(a.dtype), t.name))
    out = tmp_path / "b.onnx"
    onnx.save(m, out)
    return out


def test_a_soup_is_the_weighted_mean_of_the_weights(tmp_path):
    b = perturbed(tmp_path)
    soup = average_onnx.average([str(DETECTOR), str(b)], [0.75, 0.25])
    got = {t.name: numpy_helper.to_array(t) for t in soup.graph.initializer}
    for t in onnx.load(DETECTOR).graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            np.testing.assert_allclose(got[t.name], a + 0.0025, atol=1e-6)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    only_first = average_onnx.average([str(DETECTOR), str(b)], [1.0, 0.0])
    np.testing.assert_allclose(run(only_first, x), run(DETECTOR, x), atol=1e-5)
    assert not np.allclose(run(soup, x), run(DETECTOR, x), atol=1e-5)


def test_models_of_different_architectures_are_refused(tmp_path):
    with pytest.raises(ValueError, match="same script"):
        average_onnx.average([str(DETECTOR), str(ROOT / "models" / "plate_verifier.onnx")], [0.5, 0.5])


def test_the_cli_says_what_is_wrong_with_its_weights(tmp_path, capsys):
    sys.argv = ["average_onnx.py", "--src", str(DETECTOR), str(DETECTOR), "--weights", "0.5", "--out",
                str(tmp_path / "x.onnx")]
    assert average_onnx.main() == 2
    assert "one --weights value per --src model" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_the_verifier_fine_tunes_from_the_function_it_exported(tmp_path):
    """--init-onnx: the folded batch norms become identities, so training starts where the file was."""
    torch = pytest.importorskip("torch")  # the `train` extra
    import train_verifier as tv
    model = tv.Verifier()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    tv.export_onnx(model.eval(), tmp_path / "v.onnx", {"trained_by": "test"})
    loaded = tv.Verifier()
    tv.load_onnx_weights(loaded, str(tmp_path / "v.onnx"))
    x = np.random.default_rng(1).uniform(0, 1, (4, 3, tv.CROP_H, tv.CROP_W)).astype(np.float32)
    with torch.no_grad():
        got = tv.WithSigmoid(loaded.eval())(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(tmp_path / "v.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, sess.run(None, {"image": x})[0], atol=1e-5)
    loaded.train()
    tv.freeze_batchnorm(loaded)
    assert not any(m.training for m in loaded.modules() if isinstance(m, torch.nn.BatchNorm2d))
