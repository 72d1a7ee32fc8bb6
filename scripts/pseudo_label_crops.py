#!/usr/bin/env python3
"""Give the text-less real crops of plate-crops-detect a text, read by PP-OCRv4 as a teacher.

`../shared/datasets/plate-crops-detect` holds 6,581 real European and Brazilian plates
without text; the only European plates with text are in `scenes-eu`, an evaluation set.
PP-OCRv4's recogniser (rapidocr-onnxruntime, Apache-2.0, trained on a large text corpus)
reads these crops well enough to teach our recogniser, if we keep only what it reads
confidently and what fits the plate syntax:

* Brazil (`br/`): LLL9999 or Mercosur LLL9L99, teacher score >= --min-score. Plates whose
  text falls in the Brazilian validation split of br-plate-crops (sha1(text) % 5 == 0) are
  left out, so that split stays unseen.
* Europe (`eu/`, `eu2/`): 4-8 characters A-Z0-9 with letters and digits. The teacher reads
  the blue EU band and the round German seals as characters, so it reads each crop twice:
  with the band (found by colour) cut off, and with the band and seal-like colour blobs
  painted white (``clean_eu``); a crop is kept only when both readings agree, each with
  score >= --min-score - 0.05. The crop trained on keeps band and seals, so the student
  learns to ignore them.

Writes OUT/groundtruth.csv (`file,PLATE,region,score`; file relative to the dataset root) and
prints how many were kept per folder.

    .venv/bin/python scripts/pseudo_label_crops.py --out .data/pseudo
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from plate_crops import is_val, write_labels

from alprd.plates import normalize_plate

BR_SYNTAX = re.compile(r"^[A-Z]{3}[0-9]([0-9]|[A-Z])[0-9]{2}$")
EU_SYNTAX = re.compile(r"^(?=.*[A-Z])(?=.*[0-9])[A-Z0-9]{4,8}$")


def eu_band_width(img: np.ndarray) -> int:
    """Width in pixels of a blue EU band at the crop's left edge (0 if none)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    blue = (hsv[..., 0] > 95) & (hsv[..., 0] < 130) & (hsv[..., 1] > 90) & (hsv[..., 2] > 50)
    col = blue.mean(axis=0)
    limit = int(img.shape[1] * 0.16)
    w = 0
    while w < limit and col[w] > 0.45:
        w += 1
    return w if w >= max(3, img.shape[1] * 0.04) else 0


def clean_eu(img: np.ndarray) -> np.ndarray:
    """The crop with its EU band and roundish colour blobs (seals, stickers) painted white."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    sat = cv2.dilate(((hsv[..., 1] > 70) & (hsv[..., 2] > 40)).astype(np.uint8), np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(sat)
    h_img, w_img = img.shape[:2]
    band, blobs = [], []
    for x, y, w, h, area in stats[1:n]:
        if area < 0.004 * h_img * w_img:
            continue
        if x + w < 0.2 * w_img:
            band.append(x + w)
        elif h <= 0.8 * h_img and 0.5 <= w / max(1, h) <= 1.7:
            blobs.append((x, y, w, h))
    if len(blobs) >= 4:  # a line of coloured characters, not seals
        blobs = []
    out = img.copy()
    if band:
        out[:, :max(band)] = 255
    for x, y, w, h in blobs:
        mx, my = w // 4 + 1, h // 4 + 1
        out[max(0, y - my):y + h + my, max(0, x - mx):x + w + mx] = 255
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--out", default=str(ROOT / ".data" / "pseudo"))
    ap.add_argument("--min-score", type=float, default=0.9)
    args = ap.parse_args()
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()

    def read(img: np.ndarray) -> tuple[str, float]:
        res, _ = engine(img, use_det=False, use_cls=False, use_rec=True)
        return (normalize_plate(res[0][0]), float(res[0][1])) if res else ("", 0.0)

    root = Path(args.data) / "plate-crops-detect"
    rows = []
    for folder, region, syntax in (("br", "br", BR_SYNTAX), ("eu", "eu", EU_SYNTAX), ("eu2", "eu", EU_SYNTAX)):
        files = sorted((root / folder).glob("*.jpg"))
        kept = 0
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                continue
            band = eu_band_width(img) if region == "eu" else 0
            text, score = read(img[:, band:])
            if region == "eu":
                text2, score2 = read(clean_eu(img))
                score = min(score, score2) + 0.05 if text2 == text else 0.0
            if score < args.min_score or not syntax.match(text):
                continue
            if region == "br" and is_val(text):
                continue
            rows.append((f"plate-crops-detect/{folder}/{f.name}", text, region, f"{score:.3f}"))
            kept += 1
        print(f"{folder}: {kept} of {len(files)} kept", flush=True)
    print(f"wrote {write_labels(Path(args.out), rows)}: {len(rows)} crops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
