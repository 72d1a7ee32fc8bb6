#!/usr/bin/env python3
"""Accuracy of models/plate_ocr.onnx on the held-out real US crops, next to PP-OCRv4.

Held-out split (the one scripts/train_ocr.py never trains on): a crop of
DATA/us-plate-crops is validation when sha1(file name) % 5 == 0 (143 of 745).

Prints, for our model and for the pretrained PP-OCRv4 recogniser of the PyPI
package rapidocr-onnxruntime (output normalised to A-Z0-9), on the same crops:
exact-plate accuracy and within-1-edit accuracy. PP-OCRv4 runs in two modes:
``rec`` (recogniser alone on the whole crop) and ``det+rec`` (its text detector,
then the tallest text line, i.e. the registration number, left to right).

    python scripts/eval_ocr.py [--model models/plate_ocr.onnx] [--data ../shared/datasets]
                               [--split val|all] [--no-ppocr] [--json out.json] [--errors]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from alprd.plates import edit_distance, normalize_plate
from alprd.vision.ocr import OnnxRecognizer


def is_val(key: str) -> bool:
    """Same rule as scripts/train_ocr.py: sha1(key) % 5 == 0."""
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 5 == 0



def score(preds: list[str], truths: list[str]) -> dict:
    n = max(1, len(truths))
    ed = [edit_distance(p, t) for p, t in zip(preds, truths, strict=True)]
    return {"n": len(truths), "exact": round(sum(e == 0 for e in ed) / n, 4),
            "within1": round(sum(e <= 1 for e in ed) / n, 4)}


def load_crops(data: Path, split: str) -> list[tuple[str, np.ndarray, str]]:
    root = data / "us-plate-crops"
    out = []
    with open(root / "groundtruth.csv", newline="") as f:
        for row in csv.reader(f):
            if len(row) < 3 or (split == "val" and not is_val(row[0].strip())):
                continue
            img = cv2.imread(str(root / "images" / row[0].strip()), cv2.IMREAD_COLOR)
            if img is not None:
                out.append((row[0].strip(), img, normalize_plate(row[2])))
    return out


def ppocr_reader():
    """Return (rec_only, det_rec) functions over one BGR crop, or None if rapidocr is missing."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    engine = RapidOCR()

    def rec_only(img):
        res, _ = engine(img, use_det=False, use_cls=False, use_rec=True)
        return normalize_plate(res[0][0]) if res else ""

    def det_rec(img):
        res, _ = engine(img)
        if not res:
            return ""
        boxes = []
        for quad, text, _conf in res:
            q = np.asarray(quad, np.float32)
            t = normalize_plate(text)
            if t:
                boxes.append((q[:, 1].max() - q[:, 1].min(), q[:, 1].mean(), q[:, 0].min(), t))
        if not boxes:
            return ""
        h_max, y_c = max(boxes)[:2]
        line = [b for b in boxes if b[0] >= 0.6 * h_max and abs(b[1] - y_c) < 0.5 * h_max]
        return "".join(b[3] for b in sorted(line, key=lambda b: b[2]))

    return rec_only, det_rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "plate_ocr.onnx"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--split", default="val", choices=["val", "all"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-ppocr", action="store_true", help="skip the PP-OCRv4 comparison")
    ap.add_argument("--errors", action="store_true", help="list our model's misreads")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args()

    crops = load_crops(Path(args.data), args.split)
    truths = [t for *_, t in crops]
    imgs = [c for _, c, _ in crops]
    print(f"{len(crops)} real US crops ({args.split} split: sha1(file name) % 5 == 0)")

    rec = OnnxRecognizer(args.model, threads=args.threads, min_confidence=0.0)
    t = time.perf_counter()
    reads = rec.read(imgs)
    ours_s = time.perf_counter() - t
    preds = [r.text for r in reads]
    figures = {"ours": score(preds, truths)}
    gated = OnnxRecognizer(args.model, threads=args.threads).read(imgs)  # default min_confidence 0.5
    kept = [(g.text, tr) for g, tr in zip(gated, truths, strict=True) if g.text]
    figures["ours_min_conf_0.5"] = {"kept": len(kept), "exact_of_kept": round(
        sum(p == tr for p, tr in kept) / max(1, len(kept)), 4)}
    figures["ours_O_as_0"] = score([p.replace("O", "0") for p in preds], [tr.replace("O", "0") for tr in truths])
    print(f"ours      exact {figures['ours']['exact']:.2%}  within-1-edit {figures['ours']['within1']:.2%}  "
          f"({ours_s * 1000 / max(1, len(imgs)):.2f} ms/crop batched, {args.threads} thread)")
    print(f"          with min_confidence 0.5: {len(kept)} read, {figures['ours_min_conf_0.5']['exact_of_kept']:.2%} "
          f"of those exact; O read as 0: exact {figures['ours_O_as_0']['exact']:.2%}")
    if args.errors:
        for (name, _, tr), r in zip(crops, reads, strict=True):
            if r.text != tr:
                print(f"   {name:14s} truth {tr:11s} read {r.text:11s} conf {r.confidence:.2f}")

    if not args.no_ppocr:
        pp = ppocr_reader()
        if pp is None:
            print("PP-OCRv4: rapidocr-onnxruntime is not installed (pip install -e '.[train]')")
        else:
            for name, fn in zip(("rec", "det+rec"), pp, strict=True):
                t = time.perf_counter()
                p = [fn(i) for i in imgs]
                ms = (time.perf_counter() - t) * 1000 / max(1, len(imgs))
                figures[f"ppocrv4_{name}"] = {**score(p, truths), "ms_per_crop": round(ms, 1)}
                print(f"PP-OCRv4 {name:8s} exact {figures[f'ppocrv4_{name}']['exact']:.2%}  within-1-edit "
                      f"{figures[f'ppocrv4_{name}']['within1']:.2%}  ({ms:.0f} ms/crop)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
