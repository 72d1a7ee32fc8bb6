"""Put a tight plate crop back into a car and cut it out the way the daemon does.

The recogniser's real-scene errors (issue 19) are mostly characters from around the plate:
a leading `I` or `1` from the frame edge or a bolt, dealer-frame text, a sticker. The crop
sets are tightly cut, so the recogniser had never seen those. ``ContextBank`` keeps the
surroundings of the real plates of plate-detect/train (bumpers, frames, bolts, lights) and
pieces of the plate-free negatives; ``in_context`` pastes a plate over the original plate
of such a surround, sometimes adds a plate frame with dealer text, bolts and a sticker, and
cuts the box with a detector-like error plus the reader's own margin
(``alprd.vision.reader.crop_plate``). Only training data is used (never valid/test).
"""

from __future__ import annotations

import math
import string
from pathlib import Path

import cv2
import numpy as np

from alprd.vision.base import Detection
from alprd.vision.reader import crop_plate

WORK_H = 40  # the original plate's height in a surround patch, in pixels
DEALER_WORDS = ("TOYOTA", "HONDA", "FORD", "CHEVROLET", "NISSAN", "OF", "CITY", "MOTORS", "AUTO",
                "SALES", "AUTOMOTIVE", "DODGE", "JEEP", "KIA", "HYUNDAI", "SUBARU", "MAZDA", "BMW",
                "LEXUS", "VOLKSWAGEN", "BUICK", "GMC", "PRESTIGE", "VALLEY", "COUNTY", "SOUTH",
                "NORTH", "WEST", "EAST", "DEALER.COM", "I LOVE MY", "GO TEAM", "UNIVERSITY", "ALUMNI",
                "AUTOHAUS", "AUTOSTADT", "FIAT", "RENAULT", "PEUGEOT", "OPEL", "SEAT", "SKODA")


def _yolo_plates(label: Path, w: int, h: int) -> list[tuple[float, float, float, float]]:
    boxes = []
    for line in label.read_text().splitlines():
        p = line.split()
        if len(p) == 5 and p[0] == "0":
            cx, cy, bw, bh = (float(v) for v in p[1:])
            boxes.append((cx * w, cy * h, bw * w, bh * h))
    return boxes


class ContextBank:
    """Surround patches: (BGR patch, plate box x, y, w, h in the patch) at WORK_H-pixel plates."""

    def __init__(self, data: Path, max_negatives: int = 300, seed: int = 0):
        self.patches: list[tuple[np.ndarray, tuple[float, float, float, float] | None]] = []
        split = data / "plate-detect" / "train"
        for img_path in sorted((split / "images").glob("*.jpg")):
            label = split / "labels" / (img_path.stem + ".txt")
            if not label.is_file():
                continue
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            for cx, cy, bw, bh in _yolo_plates(label, img.shape[1], img.shape[0]):
                if bh < 8 or bw < 16:
                    continue
                s = WORK_H / bh
                x1, x2 = int(max(0, cx - 1.2 * bw)), int(min(img.shape[1], cx + 1.2 * bw))
                y1, y2 = int(max(0, cy - 2.5 * bh)), int(min(img.shape[0], cy + 2.5 * bh))
                patch = cv2.resize(img[y1:y2, x1:x2], None, fx=s, fy=s, interpolation=cv2.INTER_AREA
                                   if s < 1 else cv2.INTER_LINEAR)
                self.patches.append((patch, ((cx - bw / 2 - x1) * s, (cy - bh / 2 - y1) * s, bw * s, bh * s)))
        rng = np.random.default_rng(seed)
        negs = sorted((data / "negatives").glob("*.jpg"))
        for p in rng.permutation(len(negs))[:max_negatives] if negs else []:
            img = cv2.imread(str(negs[int(p)]), cv2.IMREAD_COLOR)
            if img is not None and min(img.shape[:2]) >= 3 * WORK_H:
                self.patches.append((img, None))
        if not self.patches:
            raise FileNotFoundError(f"no plate-detect/train or negatives images under {data}")


def _frame(canvas: np.ndarray, box: tuple[int, int, int, int], rng, font_paths: list[str]) -> None:
    """A licence-plate frame around ``box``: a rim, often a dealer band with small text, bolts."""
    from synth_plates import _colour, _paste, _text_mask

    x, y, w, h = box
    t = max(1, int(h * rng.uniform(0.05, 0.14)))
    colour = (20, 20, 20) if rng.random() < 0.5 else (_colour(rng, 150, 230) if rng.random() < 0.5
                                                       else _colour(rng, 0, 256))
    bottom = t * (int(rng.integers(2, 4)) if rng.random() < 0.6 else 1)
    top = t * (2 if rng.random() < 0.3 else 1)
    cv2.rectangle(canvas, (x - t, y - top), (x + w + t, y + h + bottom), colour, -1)
    ink = (235, 235, 235) if sum(colour) < 300 else (20, 20, 20)
    for band_y, band_h in ((y + h, bottom), (y - top, top)):
        if band_h > t and font_paths and rng.random() < 0.85:
            words = " ".join(str(rng.choice(DEALER_WORDS)) for _ in range(int(rng.integers(1, 4))))
            m = _text_mask(words, str(rng.choice(font_paths)), 40)
            th = max(2, int(band_h * rng.uniform(0.5, 0.8)))
            tw = min(int(w * 0.95), int(m.shape[1] * th / max(1, m.shape[0])))
            _paste(canvas, m, (x + (w - tw) // 2, band_y + (band_h - th) // 2, tw, th), ink)


def _bolts_and_sticker(canvas: np.ndarray, box: tuple[int, int, int, int], rng, font_paths) -> None:
    from synth_plates import _colour, _paste, _text_mask

    x, y, w, h = box
    if rng.random() < 0.5:
        r = max(1, int(h * rng.uniform(0.04, 0.08)))
        col = _colour(rng, 120, 230)
        for fx in (0.2, 0.8):
            cv2.circle(canvas, (x + int(w * fx), y + int(h * rng.uniform(0.08, 0.16))), r, col, -1)
    if rng.random() < 0.25 and font_paths:
        sw, sh = max(3, int(h * rng.uniform(0.25, 0.4))), max(3, int(h * rng.uniform(0.2, 0.3)))
        sx = x + (int(w * 0.03) if rng.random() < 0.5 else w - sw - int(w * 0.03))
        sy = y + int(h * 0.05) if rng.random() < 0.5 else y + h - sh - int(h * 0.05)
        bg = _colour(rng, 0, 256)
        cv2.rectangle(canvas, (sx, sy), (sx + sw, sy + sh), bg, -1)
        digits = "".join(rng.choice(list(string.digits), int(rng.integers(1, 3))))
        ink = (0, 0, 0) if sum(bg) > 380 else (255, 255, 255)
        _paste(canvas, _text_mask(digits, str(rng.choice(font_paths)), 30), (sx + 1, sy + 1, sw - 2, sh - 2), ink)


def in_context(plate: np.ndarray, rng: np.random.Generator, bank: ContextBank,
               font_paths: list[str], decorate: float = 0.5, slope_degrees: float = 0.0) -> np.ndarray:
    """``plate`` (tight BGR crop) pasted into a real surround and cut like a detector box + margin.

    ``slope_degrees``: the plate and its surround seen from the side, their rows sloping by that much
    (a vertical shear about the plate's centre), the box around the sloped plate as much taller.
    """
    patch, orig = bank.patches[int(rng.integers(len(bank.patches)))]
    aspect = plate.shape[1] / plate.shape[0]
    th = WORK_H * rng.uniform(0.95, 1.15)
    if orig is not None:
        ox, oy, ow, oh = orig
        th = max(th, ow * 1.02 / aspect)          # cover the original plate entirely
        cx, cy = ox + ow / 2, oy + oh / 2
    else:
        cx, cy = rng.uniform(0.3, 0.7) * patch.shape[1], rng.uniform(0.3, 0.7) * patch.shape[0]
    tw = th * aspect
    m = int(max(tw, th * 4)) + 4                   # margin so that any cut stays inside
    canvas = cv2.copyMakeBorder(patch, m, m, m, m, cv2.BORDER_REFLECT_101)
    x, y = round(cx - tw / 2) + m, round(cy - th / 2) + m
    w, h = max(4, round(tw)), max(4, round(th))
    if rng.random() < decorate * 0.8:
        _frame(canvas, (x, y, w, h), rng, font_paths)
    canvas[y:y + h, x:x + w] = cv2.resize(plate, (w, h), interpolation=cv2.INTER_AREA
                                          if w < plate.shape[1] else cv2.INTER_LINEAR)
    if rng.random() < decorate:
        _bolts_and_sticker(canvas, (x, y, w, h), rng, font_paths)
    if slope_degrees:
        t = math.tan(math.radians(slope_degrees))
        shear = np.float32([[1, 0, 0], [t, 1, -t * (x + w / 2)]])
        canvas = cv2.warpAffine(canvas, shear, (canvas.shape[1], canvas.shape[0]), borderMode=cv2.BORDER_REFLECT_101)
        rise = round(abs(t) * w / 2)
        y, h = y - rise, h + 2 * rise
    # the detector's box: each side off by a few percent, sometimes loose
    if rng.random() < 0.2:
        dl, dr = rng.uniform(-0.02, 0.2, 2) * w
        dt, db = rng.uniform(-0.05, 0.45, 2) * h
    else:
        dl, dr = rng.normal(0, 0.04, 2) * w
        dt, db = rng.normal(0, 0.09, 2) * h
    det = Detection(x - dl, y - dt, x + w + dr, y + h + db, 1.0)
    if det.width < 4 or det.height < 4:
        det = Detection(x, y, x + w, y + h, 1.0)
    return crop_plate(canvas, det)
