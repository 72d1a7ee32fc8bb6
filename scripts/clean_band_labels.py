#!/usr/bin/env python3
"""Drop the EU band's letter from teacher-read labels (scripts/pseudo_label_crops.py).

PP-OCRv4 reads the country code in the blue EU band (``S``, ``D``, ``A``, ``H``...) or
the ring of stars (``O``) as the plate's first character where the band was not found
by colour (a narrow band, a worn one). Those labels teach the recogniser to read the
band, the misread the real scenes show. Where the teacher reads the whole crop as the
label, its CTC columns say where each character is; the first one is the band's when

* its centre lies in the left tenth of the crop and at least 40% of the pixels around it
  (+-2.5% of the width) are saturated blue, or
* it is an ``O`` with at least 30% blue around it (the stars).

No model of ours and no evaluation set is involved: the rule looks at the pixels and
the teacher only, and is applied alike to the training and held-out labels.

    .venv/bin/python scripts/clean_band_labels.py --src .data/pseudo2/groundtruth.csv --out .data/pseudo4
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from plate_crops import write_labels

from alprd.plates import normalize_plate


def blue_share(img: np.ndarray, x0: float, x1: float) -> float:
    """Share of saturated-blue pixels in the columns between fractions x0 and x1 of the width."""
    w = img.shape[1]
    a = max(0, int(x0 * w))
    part = cv2.cvtColor(img[:, a:max(a + 1, int(x1 * w))], cv2.COLOR_BGR2HSV)
    h, s, v = part[..., 0], part[..., 1], part[..., 2]
    return float(((h > 95) & (h < 130) & (s > 70) & (v > 40)).mean())


def is_band_letter(img: np.ndarray, char: str, x: float) -> bool:
    """Whether the first character, read at width fraction ``x``, is the band's (module docstring)."""
    blue = blue_share(img, x - 0.025, x + 0.025)
    return (x < 0.1 and blue >= 0.4) or (char == "O" and blue >= 0.3)


class Teacher:
    """PP-OCRv4's recogniser (rapidocr-onnxruntime), returning each character with its position."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.rec = RapidOCR().text_rec
        self.chars = self.rec.postprocess_op.character

    def read(self, img: np.ndarray) -> list[tuple[str, float]]:
        """(character, centre as a fraction of the crop's width) of each plate character read."""
        h, w = img.shape[:2]
        _, in_h, in_w = self.rec.rec_image_shape
        ratio = max(in_w / in_h, w / h)
        probs = self.rec.session(self.rec.resize_norm_img(img, ratio)[None])[0][0]
        best = probs.argmax(1)
        scale = int(in_h * ratio) / min(int(in_h * ratio), int(np.ceil(in_h * w / h)))  # padding on the right
        out, prev = [], 0
        for t, i in enumerate(best):
            if i not in (0, prev):
                c = normalize_plate(self.chars[i])
                if c:
                    out.append((c, (t + 0.5) / len(best) * scale))
            prev = i
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--src", required=True, help="a groundtruth.csv of pseudo_label_crops.py / pseudo_label_agree.py")
    ap.add_argument("--out", required=True, help="folder for the cleaned groundtruth.csv")
    args = ap.parse_args()
    teacher = Teacher()
    rows, fixed = [], 0
    with open(args.src, newline="") as fh:
        for row in csv.reader(fh):
            img = cv2.imread(str(Path(args.data) / row[0]), cv2.IMREAD_COLOR) if len(row) > 2 else None
            if img is not None and row[2] == "eu" and len(row[1]) > 4:
                read = teacher.read(img)
                if "".join(c for c, _ in read) == row[1] and is_band_letter(img, *read[0]):
                    print(f"{row[0]}: {row[1]} -> {row[1][1:]}")
                    row = [row[0], row[1][1:], *row[2:]]
                    fixed += 1
            rows.append(row)
    print(f"wrote {write_labels(Path(args.out), rows)}: {len(rows)} crops, {fixed} band letters dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
