#!/usr/bin/env python3
"""Distant plates (25-40 px wide in a 1080p frame): how many the detector cascade finds (issue 20).

Design data only, for choosing the zoomed pass (``vision.zoom_window``, alprd.vision.zoom):
each distinct photo of plate-detect/train (its three augmented exports count once) is shrunk
so that its widest plate is 25-40 px wide, and pasted into a synthetic 1920x1080 street frame
with that plate's centre near where distant plates are ahead of a car: x in the middle fifth of
the frame, y within a tenth of the frame's height around its middle (``--x``/``--y`` set the
spans). The other plates of the photo, now tiny, are neither counted nor false. False boxes
per photo are counted on the design half of negatives/ (sha1(name) % 2 == 0, as
scripts/calibrate_ocr.py splits them; ``--half 1`` the other half, which no training sees),
never on valid/test or the scene sets.

    python scripts/eval_far_plates.py [--photos 150] [--negatives 250]
        [--window 0.25,0.35,0.75,0.65 | --window none] [--zoom-input 768] [--candidate-threshold 0.1]
        [--half 0|1] [--verifier F] [--detector F] [--held-out]

Prints the far plates found (IoU >= 0.5), the precision on those frames and the false boxes
per negative photo, at the daemon's default thresholds; ``--held-out`` also the cascade's recall
and precision on the verifier's held-out tenth of plate-detect/train (plate_crops.held_out_photo;
needs the train extra).
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
from eval_detector import match
from plate_crops import negative_photos

from alprd import synth
from alprd.config import VisionConfig
from alprd.vision import load_detector


def distinct_photos(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (image, plate boxes) per distinct photo of plate-detect/train (name before Roboflow's ``.rf.``)."""
    from eval_detector import read_split

    files = sorted((root / "train" / "images").glob("*.jpg"))
    seen, out = set(), []
    for f, item in zip(files, read_split(root, "train"), strict=True):
        key = f.name.split(".rf.")[0]
        if key not in seen and len(item[1]):
            seen.add(key)
            out.append(item)
    return out


def far_frame(im: np.ndarray, gt: np.ndarray, rng: np.random.Generator, xs: float, ys: float):
    """The photo shrunk so its widest plate is 25-40 px, pasted into a 1080p street frame; (frame, that plate)."""
    plate = gt[np.argmax(gt[:, 2] - gt[:, 0])]
    scale = rng.uniform(25, 40) / (plate[2] - plate[0])
    small = cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    box = plate * scale
    frame = synth.street_scene(1920, 1080, rng)
    cx = 1920 * (0.5 + rng.uniform(-xs, xs) / 2)
    cy = 1080 * (0.5 + rng.uniform(-ys, ys) / 2)
    h, w = small.shape[:2]
    ox = int(np.clip(cx - (box[0] + box[2]) / 2, 0, 1920 - w))
    oy = int(np.clip(cy - (box[1] + box[3]) / 2, 0, 1080 - h))
    frame[oy:oy + h, ox:ox + w] = small
    return frame, box + np.array([ox, oy, ox, oy], np.float32), gt * scale + np.array([ox, oy, ox, oy], np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--photos", type=int, default=150)
    ap.add_argument("--negatives", type=int, default=250)
    ap.add_argument("--window", default="", help="x1,y1,x2,y2 of the zoomed pass, 'none' for none (default: config's)")
    ap.add_argument("--verifier", default="", help="this plate_verifier.onnx instead of the config's")
    ap.add_argument("--detector", default="", help="this plate_detector.onnx instead of the config's")
    ap.add_argument("--zoom-input", type=int, default=0, help="the zoomed pass's input size (default: config's)")
    ap.add_argument("--candidate-threshold", type=float, default=0.0,
                    help="the detector's proposal threshold in front of the verifier (default: config's)")
    ap.add_argument("--half", type=int, choices=(0, 1), default=0,
                    help="which half of negatives/ (sha1(name) %% 2): 0 the design half, 1 the half kept unseen")
    ap.add_argument("--x", type=float, default=0.4, help="span of the far plates' centres, fraction of the width")
    ap.add_argument("--y", type=float, default=0.2, help="the same, of the height")
    ap.add_argument("--held-out", action="store_true", help="also the held-out tenth of the training photos")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    kw = {}
    if args.window:
        kw["zoom_window"] = [] if args.window == "none" else [float(v) for v in args.window.split(",")]
    if args.verifier:
        kw["verifier_model"] = args.verifier
    if args.detector:
        kw["detector_model"] = args.detector
    if args.zoom_input:
        kw["zoom_input"] = args.zoom_input
    if args.candidate_threshold:
        kw["candidate_threshold"] = args.candidate_threshold
    cfg = VisionConfig(**kw)
    det = load_detector(cfg)
    rng = np.random.default_rng(0)
    photos = distinct_photos(Path(args.data) / "plate-detect")
    found = tp = fp = 0
    picks = rng.permutation(len(photos))[: args.photos]
    for i in picks:
        frame, plate, others = far_frame(*photos[i], rng, args.x, args.y)
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in det.detect(frame)], np.float32).reshape(-1, 4)
        hit, on_far = match(boxes, plate[None])
        _, on_any = match(boxes, others, iou_thr=0.3)  # boxes on the photo's other, tiny plates: not false
        found += int(hit.sum())
        tp += int(on_far.sum())
        fp += int((~on_any & ~on_far).sum())
    neg_files = negative_photos(Path(args.data), args.half)[: args.negatives]
    false_neg = sum(len(det.detect(cv2.imread(str(f), cv2.IMREAD_COLOR))) for f in neg_files)
    print(f"{det!r}")
    print(f"far plates 25-40 px found: {found / len(picks):.1%} ({found}/{len(picks)}); precision on those frames "
          f"{tp / max(tp + fp, 1):.1%}; false boxes per negative photo {false_neg / max(len(neg_files), 1):.3f} "
          f"({len(neg_files)} negatives of half {args.half})")
    if args.held_out:
        from eval_detector import read_split
        from plate_crops import held_out_photo
        from train_verifier import held_out_report

        root = Path(args.data) / "plate-detect"
        files = sorted((root / "train" / "images").glob("*.jpg"))
        held = [x for x, f in zip(read_split(root, "train"), files, strict=True) if held_out_photo(f)]
        report = held_out_report(str(cfg.detector_model), cfg.verifier_model, held, cfg.detector_input,
                                 candidate_thresholds=(cfg.candidate_threshold,), thresholds=(cfg.detect_threshold,))
        for k, v in report.items():
            print(f"held-out tenth of plate-detect/train, {k}: recall {v['recall']:.3f} precision {v['precision']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
