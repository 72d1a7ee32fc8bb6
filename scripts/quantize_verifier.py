#!/usr/bin/env python3
"""Quantize the plate verifier to int8 (what ships as models/plate_verifier.onnx).

The verifier scores every candidate box of every frame (~16 per 1080p frame with the
zoomed pass), so its network is a fixed share of the whole read: int8 takes it from
3.6 to 2.0 ms for 16 crops on one core (models/plate_verifier.md). Same recipe as the
recogniser (``scripts/quantize_ocr.quantize``). Activation ranges are calibrated on the
context crops of the detector's own candidates on training images outside the held-out
tenth (sha1(file name) % 10 != 0), never on valid/test; the float and int8 cascades are
then compared on the held-out tenth (``train_verifier.held_out_report``).

    python scripts/quantize_verifier.py --src runs/verifier/plate_verifier.onnx --out models/plate_verifier.onnx

``--src`` is the float model that ``scripts/train_verifier.py`` exports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from eval_detector import read_split
from plate_crops import held_out_photo
from quantize_ocr import quantize
from train_verifier import held_out_report

from alprd.config import VisionConfig
from alprd.vision.detector import OnnxDetector
from alprd.vision.verifier import context_crop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="float32 plate_verifier.onnx exported by scripts/train_verifier.py")
    ap.add_argument("--out", default=str(ROOT / "models" / "plate_verifier.onnx"))
    ap.add_argument("--detector", default=str(ROOT / "models" / "plate_detector.onnx"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--n", type=int, default=600, help="calibration crops")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    cfg = VisionConfig()
    root = Path(args.data) / "plate-detect"
    files = sorted((root / "train" / "images").glob("*.jpg"))
    held = [held_out_photo(f) for f in files]
    data = read_split(root, "train")
    det = OnnxDetector(args.detector, score_threshold=cfg.candidate_threshold, input_size=cfg.detector_input)
    rng = np.random.default_rng(0)
    inputs: list[np.ndarray] = []
    for i in rng.permutation(len(files)):
        if held[i]:
            continue
        im = data[i][0]
        inputs += [np.ascontiguousarray(context_crop(im, (d.x1, d.y1, d.x2, d.y2)).transpose(2, 0, 1),
                                        dtype=np.float32) / 255 for d in det.detect(im)]
        if len(inputs) >= args.n:
            break
    quantize(args.src, args.out, inputs[:args.n],
             f"{min(len(inputs), args.n)} calibration candidate crops, scripts/quantize_verifier.py",
             symbolic_shapes=False)
    held_data = [x for x, h in zip(data, held, strict=True) if h]
    for name, model in (("float", args.src), ("int8", args.out)):
        report = held_out_report(args.detector, Path(model), held_data, cfg.detector_input,
                                 candidate_thresholds=(cfg.candidate_threshold,), thresholds=(cfg.detect_threshold,))
        for k, v in report.items():
            print(f"{name}: held-out images, {k}: recall {v['recall']:.3f} precision {v['precision']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
