"""The real plate-crop sets and their fixed train/validation split (no torch needed), and the
two halves of the plate-free negatives.

Shared by scripts/train_ocr.py and scripts/eval_ocr.py so that evaluation uses
exactly the crops training never saw: a crop is validation when
sha1(key) % 5 == 0, the key being the file name for US crops and the plate text
for Brazilian ones (one car appears in many Brazilian files).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2

from alprd.plates import normalize_plate
from alprd.vision.ocr import MAX_SLOTS


def is_val(key: str) -> bool:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 5 == 0


def held_out_photo(path: str | Path) -> bool:
    """The tenth of plate-detect/train held out to judge the detector cascade (sha1(file name) % 10 == 0)."""
    return int(hashlib.sha1(Path(path).name.encode()).hexdigest(), 16) % 10 == 0


def write_labels(out: Path, rows: list) -> Path:
    """Write teacher-label rows (file, PLATE, region, score) as OUT/groundtruth.csv (``load_pseudo`` reads it)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "groundtruth.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def negative_half(path: Path) -> int:
    """0: the design half of negatives/ (thresholds are chosen and hard negatives mined there), 1: the other."""
    return int(hashlib.sha1(path.name.encode()).hexdigest(), 16) % 2


def negative_photos(data: Path, half: int) -> list[Path]:
    """The photos of one half of negatives/, in name order."""
    return [f for f in sorted((data / "negatives").glob("*.jpg")) if negative_half(f) == half]


def load_crops(root: Path, text_col: int, split_by_text: bool) -> tuple[list, list]:
    """(train, val) lists of (file, image, text) from a crops folder with groundtruth.csv."""
    train, val = [], []
    if not (root / "groundtruth.csv").is_file():
        return train, val
    with open(root / "groundtruth.csv", newline="") as f:
        for row in csv.reader(f):
            if len(row) <= text_col:
                continue
            name, text = row[0].strip(), normalize_plate(row[text_col])
            img = cv2.imread(str(root / "images" / name), cv2.IMREAD_COLOR)
            if img is None or not text:
                continue
            (val if is_val(text if split_by_text else name) else train).append((name, img, text[:MAX_SLOTS]))
    return train, val


def load_us(data: Path) -> tuple[list, list]:
    return load_crops(data / "us-plate-crops", 2, split_by_text=False)


def load_br(data: Path) -> tuple[list, list]:
    return load_crops(data / "br-plate-crops", 1, split_by_text=True)


def load_pseudo(data: Path, table: Path) -> tuple[list, list]:
    """(train, val) of the teacher-read crops (scripts/pseudo_label_crops.py); val: sha1(file) % 5 == 0."""
    train, val = [], []
    if not table.is_file():
        return train, val
    with open(table, newline="") as f:
        for row in csv.reader(f):
            if len(row) < 2:
                continue
            img = cv2.imread(str(data / row[0]), cv2.IMREAD_COLOR)
            if img is not None:
                (val if is_val(row[0]) else train).append((row[0], img, row[1][:MAX_SLOTS]))
    return train, val


def plate_images(data: Path, detect_crops: bool = False, max_width: int = 0) -> list:
    """Real plate crops as images, to paste into scenes: us-plate-crops and br-plate-crops, plus the
    6,581 of plate-crops-detect with ``detect_crops``; shrunk to ``max_width`` if given (RAM)."""
    files = sorted((data / "us-plate-crops" / "images").glob("*.png")) + \
        sorted((data / "br-plate-crops" / "images").glob("*.jpg"))
    if detect_crops:
        files += sorted((data / "plate-crops-detect").glob("*/*.jpg"))
    out = []
    for im in (cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files):
        if im is None:
            continue
        if max_width and im.shape[1] > max_width:
            im = cv2.resize(im, (max_width, max(1, round(im.shape[0] * max_width / im.shape[1]))),
                            interpolation=cv2.INTER_AREA)
        out.append(im)
    return out
