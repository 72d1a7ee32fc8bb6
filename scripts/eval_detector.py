#!/usr/bin/env python3
"""Measure the plate detector: recall, precision and small-plate recall.

Three test sets, none of them ever trained on:

1. ``native``: plate-detect valid+test (125 images, 158 plates), the 640x640
   images given to the detector as they are. A plate counts as found when a box
   overlaps it with IoU >= 0.5 (greedy, best score first); every other box at or
   above the threshold is a false positive.
   "Small" plates are those under 40 px wide in a 1920x1080 frame. A 640-wide
   image and a 1920-wide frame cover the same field of view when both are shown
   to the detector at the same input size, so 40 px at 1080p is 40/3 = 13.3 px
   in these 640x640 images: small = width < 13.3 px.
2. ``canvas1080``: the same images pasted, unscaled, at a random spot into a
   synthetic 1920x1080 street frame, so each plate keeps its pixel width but now
   sits in a real 1080p frame (3x smaller at the network input). Recall is given
   per 1080p plate width: < 40 px, 40-80 px, >= 80 px.
3. ``demo``: synthetic 1920x1080 frames drawn like the demo camera
   (``alprd.synth``: street scene, 1-4 cars, plates 60-200 px wide).

Usage:
    python scripts/eval_detector.py [--model models/plate_detector.onnx] [--data ../shared/datasets]
        [--input-size 640] [--threshold 0.4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alprd import synth
from alprd.config import VisionConfig
from alprd.vision import load_detector
from alprd.vision.base import PlateDetector

SMALL_1080 = 40.0


def read_split(root: Path, split: str):
    """(image, plate boxes x1y1x2y2 in pixels) for every image of a plate-detect split."""
    out = []
    for f in sorted((root / split / "images").glob("*.jpg")):
        im = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if im is None:
            continue
        h, w = im.shape[:2]
        boxes = []
        lab = root / split / "labels" / (f.stem + ".txt")
        if lab.is_file():
            for line in lab.read_text().split("\n"):
                p = line.split()
                if len(p) == 5 and p[0] == "0":
                    cx, cy, bw, bh = (float(v) for v in p[1:])
                    boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        out.append((im, np.array(boxes, np.float32).reshape(-1, 4)))
    return out


def match(dets: np.ndarray, gt: np.ndarray, iou_thr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching, dets sorted by score. Returns (gt matched flags, det is-true-positive flags)."""
    matched = np.zeros(len(gt), bool)
    tp = np.zeros(len(dets), bool)
    for k, d in enumerate(dets):
        if len(gt) == 0:
            break
        ix = np.minimum(gt[:, 2], d[2]) - np.maximum(gt[:, 0], d[0])
        iy = np.minimum(gt[:, 3], d[3]) - np.maximum(gt[:, 1], d[1])
        inter = ix.clip(0) * iy.clip(0)
        union = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) + (d[2] - d[0]) * (d[3] - d[1]) - inter
        iou = np.where(matched, 0.0, inter / np.maximum(union, 1e-9))
        j = int(iou.argmax())
        if iou[j] >= iou_thr:
            matched[j] = True
            tp[k] = True
    return matched, tp


class Tally:
    def __init__(self, bins: dict[str, tuple[float, float]]) -> None:
        self.bins = bins
        self.found = {k: 0 for k in bins}
        self.total = {k: 0 for k in bins}
        self.tp = self.fp = self.n = self.hit = 0

    def add(self, dets: np.ndarray, gt: np.ndarray, widths: np.ndarray) -> None:
        matched, tp = match(dets, gt)
        self.tp += int(tp.sum())
        self.fp += int((~tp).sum())
        self.n += len(gt)
        self.hit += int(matched.sum())
        for k, (lo, hi) in self.bins.items():
            sel = (widths >= lo) & (widths < hi)
            self.total[k] += int(sel.sum())
            self.found[k] += int((matched & sel).sum())

    def summary(self) -> dict:
        out = {"plates": self.n, "found": self.hit, "recall": self.hit / max(self.n, 1),
               "false_positives": self.fp, "precision": self.tp / max(self.tp + self.fp, 1)}
        for k in self.bins:
            out[f"recall_{k}"] = self.found[k] / max(self.total[k], 1)
            out[f"plates_{k}"] = self.total[k]
        return out


def run_native(det: PlateDetector, data, thresholds) -> dict:
    bins = {"small": (0, SMALL_1080 / 3), "rest": (SMALL_1080 / 3, 1e9)}
    tallies = {t: Tally(bins) for t in thresholds}
    for im, gt in data:
        all_d = det.detect(im)
        for t in thresholds:
            d = np.array([[x.x1, x.y1, x.x2, x.y2] for x in all_d if x.score >= t], np.float32).reshape(-1, 4)
            tallies[t].add(d, gt, gt[:, 2] - gt[:, 0])
    return {t: tallies[t].summary() for t in thresholds}


def run_canvas(det: PlateDetector, data, threshold: float, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    bins = {"lt40": (0, 40), "40to80": (40, 80), "ge80": (80, 1e9)}
    tally = Tally(bins)
    bg = [synth.street_scene(1920, 1080, rng) for _ in range(4)]
    for k, (im, gt) in enumerate(data):
        frame = bg[k % len(bg)].copy()
        h, w = im.shape[:2]
        ox, oy = int(rng.integers(0, 1920 - w + 1)), int(rng.integers(0, 1080 - h + 1))
        frame[oy:oy + h, ox:ox + w] = im
        g = gt + np.array([ox, oy, ox, oy], np.float32)
        d = np.array([[x.x1, x.y1, x.x2, x.y2] for x in det.detect(frame) if x.score >= threshold],
                     np.float32).reshape(-1, 4)
        tally.add(d, g, g[:, 2] - g[:, 0])
    return tally.summary()


def demo_frame(rng: np.random.Generator, min_w: int = 60, max_w: int = 200):
    """A 1920x1080 frame like the synthetic demo camera draws, and its plate boxes."""
    frame = synth.street_scene(1920, 1080, rng)
    cars, boxes = [], []
    n = int(rng.integers(1, 5))
    for _ in range(n * 6):
        if len(boxes) >= n:
            break
        pw = int(rng.integers(min_w, max_w + 1))
        cw, ch = int(pw * 4.5), int(pw * 2.6)
        cx, cy = int(rng.integers(cw // 2, 1920 - cw // 2)), int(rng.integers(int(ch * 0.7) + 200, 1080 - ch // 3))
        rect = (cx - cw // 2, cy - int(ch * 0.7), cx + cw // 2, cy + int(ch * 0.3))
        if any(not (rect[2] < r[0] or r[2] < rect[0] or rect[3] < r[1] or r[3] < rect[1]) for r in cars):
            continue
        plate = synth.render_plate(synth.random_plate_text(rng), rng)
        boxes.append(synth.paste_plate_on_car(frame, plate, (cx, cy), pw, rng))
        cars.append(rect)
    return frame, np.array(boxes, np.float32).reshape(-1, 4)


def run_demo(det: PlateDetector, threshold: float, frames: int, seed: int = 11) -> dict:
    rng = np.random.default_rng(seed)
    tally = Tally({"60to100": (60, 100), "100to200": (100, 1e9)})
    for _ in range(frames):
        frame, gt = demo_frame(rng)
        d = np.array([[x.x1, x.y1, x.x2, x.y2] for x in det.detect(frame) if x.score >= threshold],
                     np.float32).reshape(-1, 4)
        tally.add(d, gt, gt[:, 2] - gt[:, 0])
    return tally.summary()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "plate_detector.onnx"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--splits", default="valid,test")
    ap.add_argument("--input-size", type=int, nargs="*", default=[0],
                    help="network input size(s), longer side; 0 = the model's default")
    ap.add_argument("--threshold", type=float, default=0.4)
    ap.add_argument("--sweep", action="store_true", help="also print recall/precision at other thresholds")
    ap.add_argument("--demo-frames", type=int, default=100)
    ap.add_argument("--no-canvas", action="store_true", help="skip the 1080p-canvas and demo-camera sets")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--verifier", default="", help="score the detector + verifier cascade (plate_verifier.onnx)")
    ap.add_argument("--candidate-threshold", type=float, default=0.1,
                    help="with --verifier: the detector's own threshold for proposing boxes")
    args = ap.parse_args(argv)

    root = Path(args.data) / "plate-detect"
    data = [x for s in args.splits.split(",") for x in read_split(root, s)]
    if not data:
        print(f"no images under {root}/{{{args.splits}}}", file=sys.stderr)
        return 2
    thresholds = [args.threshold]
    if args.sweep:
        # without a verifier, also candidate thresholds: the detector's recall there caps any second stage
        low = set() if args.verifier else {0.03, 0.05, 0.1, 0.15}
        thresholds = sorted(set(thresholds) | low | {0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9})
    results = {}
    for size in args.input_size:
        def detector(threshold: float, size: int = size) -> PlateDetector:
            return load_detector(VisionConfig(
                detector_model=args.model, verifier_model=args.verifier, threads=args.threads, detector_input=size,
                candidate_threshold=args.candidate_threshold, detect_threshold=threshold))

        det = detector(min(thresholds))
        key = f"input_{size or 'model'}"
        res = {"native": run_native(det, data, thresholds)}
        print(f"== {det!r} threshold={args.threshold} "
              f"({len(data)} images, splits {args.splits})")
        for t in thresholds:
            r = res["native"][t]
            mark = " <==" if t == args.threshold else ""
            print(f"  native 640x640   t={t:.2f}: recall {r['recall']:.3f} ({r['found']}/{r['plates']})  "
                  f"precision {r['precision']:.3f} ({r['false_positives']} FP)  small-plate recall "
                  f"{r['recall_small']:.3f} ({r['plates_small']} plates <40 px @1080p)  other "
                  f"{r['recall_rest']:.3f}{mark}")
        res["native"] = {str(k): v for k, v in res["native"].items()}
        if not args.no_canvas:
            det = detector(args.threshold)
            c = run_canvas(det, data, args.threshold)
            res["canvas1080"] = c
            print(f"  1080p canvas     t={args.threshold:.2f}: recall {c['recall']:.3f}  precision "
                  f"{c['precision']:.3f}  by 1080p width: <40 px {c['recall_lt40']:.3f} ({c['plates_lt40']}), "
                  f"40-80 px {c['recall_40to80']:.3f} ({c['plates_40to80']}), >=80 px {c['recall_ge80']:.3f} "
                  f"({c['plates_ge80']})")
            d = run_demo(det, args.threshold, args.demo_frames)
            res["demo"] = d
            print(f"  demo camera 1080p t={args.threshold:.2f}: recall {d['recall']:.3f} ({d['found']}/{d['plates']})"
                  f"  precision {d['precision']:.3f} ({d['false_positives']} FP)  60-100 px "
                  f"{d['recall_60to100']:.3f}, 100-200 px {d['recall_100to200']:.3f}")
        results[key] = res
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
