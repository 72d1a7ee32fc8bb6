#!/usr/bin/env python3
"""Choose the recogniser's drop threshold (vision.ocr_min_confidence) on held-out training data.

The threshold must drop non-plates and keep readable plates. Both sides are measured on
data the models never trained on and that is not an evaluation set:

* plates: the held-out US crops (sha1(file) % 5 == 0) and Brazilian crops (sha1(text) % 5 == 0)
  as they are and pasted into real surrounds and cut like a detector box
  (scripts/plate_context.py), plus the held-out teacher-read crops;
* non-plates: what the detector (with its verifier, at the daemon's settings) boxes on the
  plate-free negatives, half of them by sha1(name) % 2 == 0 (the other half is reported
  apart, never chosen on).

For each threshold it prints the share of plates dropped, the exact reads kept, and false
reads per negative photo on both halves; the suggested threshold is the highest one with at
most --max-dropped of the plates dropped, then the false-read rate it gives.

    .venv/bin/python scripts/calibrate_ocr.py --model models/plate_ocr.onnx
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
from plate_context import ContextBank, in_context
from plate_crops import load_br, load_pseudo, load_us, negative_half

from alprd.config import VisionConfig
from alprd.vision import load_detector
from alprd.vision.ocr import OnnxRecognizer
from alprd.vision.reader import crop_plate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--model", default=str(ROOT / "models" / "plate_ocr.onnx"))
    ap.add_argument("--pseudo", default=str(ROOT / ".data" / "pseudo" / "groundtruth.csv"))
    ap.add_argument("--fonts", default=str(ROOT / ".data" / "fonts"))
    ap.add_argument("--max-dropped", type=float, default=0.02)
    args = ap.parse_args()
    data = Path(args.data)
    _, us_val = load_us(data)
    _, br_val = load_br(data)
    _, pseudo_val = load_pseudo(data, Path(args.pseudo))
    bank, rng = ContextBank(data, seed=7), np.random.default_rng(7)
    fonts = [str(p) for p in Path(args.fonts).glob("*.ttf") if "Serif" not in p.name]
    plates = [(c, t) for _, c, t in us_val + br_val + pseudo_val]
    plates += [(in_context(c, rng, bank, fonts), t) for _, c, t in us_val + br_val]
    rec = OnnxRecognizer(args.model, threads=2, min_confidence=0.0)
    got = rec.read([c for c, _ in plates])
    conf = np.array([g.confidence if g.text else 0.0 for g in got])
    exact = np.array([g.text == t for g, (_, t) in zip(got, plates, strict=True)])

    cfg = VisionConfig()
    detector = load_detector(cfg)
    neg_conf: dict[int, list[float]] = {0: [], 1: []}
    photos = {0: 0, 1: 0}
    for path in sorted((data / "negatives").glob("*.jpg")):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        half = negative_half(path)
        photos[half] += 1
        dets = detector.detect(img)
        reads = rec.read([crop_plate(img, d) for d in dets]) if dets else []
        neg_conf[half] += [r.confidence for r in reads if len(r.text) >= cfg.min_plate_chars]
    print(f"plates {len(plates)} (exact at threshold 0: {exact.mean():.3f}); negatives "
          f"{photos[0]} + {photos[1]} photos, {len(neg_conf[0])} + {len(neg_conf[1])} reads at threshold 0")
    print(" threshold  dropped  exact-kept  false/photo(choice half)  false/photo(other half)")
    best = 0.0
    for th in np.round(np.arange(0.0, 0.95, 0.05), 2):
        dropped = float((conf < th).mean())
        kept_exact = float((exact & (conf >= th)).mean())
        f0 = sum(c >= th for c in neg_conf[0]) / max(1, photos[0])
        f1 = sum(c >= th for c in neg_conf[1]) / max(1, photos[1])
        print(f"   {th:.2f}     {dropped:.3f}    {kept_exact:.3f}        {f0:.4f}                  {f1:.4f}")
        if dropped <= args.max_dropped:
            best = float(th)
    f0 = sum(c >= best for c in neg_conf[0]) / max(1, photos[0])
    print(f"suggested vision.ocr_min_confidence = {best:.2f} (plates dropped <= {args.max_dropped:.0%}); "
          f"false reads per negative photo there: {f0:.4f} (choice half)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
