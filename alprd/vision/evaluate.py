"""Score detection and reading on a folder of images with ground truth.

Two layouts are understood:
- YOLO (``../shared/datasets/plate-detect``): ``images/*.jpg`` beside ``labels/*.txt``
  with ``class cx cy w h`` normalised lines (class 0 = plate), possibly in
  ``train/ valid/ test/`` split folders. Boxes only, so reading is not scored.
- Flat: ``name.jpg`` beside ``name.txt`` whose lines are ``name x y w h PLATE``
  in pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from alprd.plates import edit_distance
from alprd.vision.reader import PlateReader, crop_plate

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# plate width as it would be in a 1920-pixel-wide frame of the same view (a 640-wide photo: x3)
WIDTH_BINS = {"<40": (0, 40), "40-80": (40, 80), "80-160": (80, 160), ">=160": (160, float("inf"))}
# box width / height: the boxes are axis-aligned, so a plate seen at an angle or rotated shows as a
# narrower box (a square US plate box is steep; 2:1 frontal; wide: European or frontal and level)
ASPECT_BINS = {"<1.5": (0, 1.5), "1.5-2.5": (1.5, 2.5), ">=2.5": (2.5, float("inf"))}


@dataclass(frozen=True)
class TruthBox:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 pixels
    plate: str | None


@dataclass
class Sample:
    image: Path
    truth: list[TruthBox]


@dataclass
class EvalResult:
    images: int = 0
    plates: int = 0
    plates_with_text: int = 0
    detected: int = 0
    predictions: int = 0
    true_positives: int = 0
    reads: int = 0              # detections the recogniser read (what the daemon would store)
    reads_on_plates: int = 0    # ... matched one-to-one to a true plate
    exact: int = 0
    one_edit: int = 0
    dropped: int = 0            # boxed plates the recogniser read as "not a plate"
    latencies_ms: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    by_width: dict[str, list[int]] = field(default_factory=lambda: {k: [0, 0] for k in WIDTH_BINS})  # found, all
    by_aspect: dict[str, list[int]] = field(default_factory=lambda: {k: [0, 0] for k in ASPECT_BINS})

    def count(self, box: tuple[float, float, float, float], image_width: int, found: bool) -> None:
        """Tally a true plate by its width in 1080p terms and by its box's aspect (the angle proxy)."""
        w, h = box[2] - box[0], box[3] - box[1]
        for bins, value, table in ((WIDTH_BINS, w * 1920 / max(1, image_width), self.by_width),
                                   (ASPECT_BINS, w / max(h, 1e-6), self.by_aspect)):
            key = next(k for k, (lo, hi) in bins.items() if lo <= value < hi)
            table[key][0] += found
            table[key][1] += 1

    def summary(self) -> dict[str, float | int | None]:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        lat = np.array(self.latencies_ms or [0.0])
        return {
            "images": self.images,
            "plates": self.plates,
            "recall": ratio(self.detected, self.plates),
            "precision": ratio(self.true_positives, self.predictions),
            "read_recall": ratio(self.reads_on_plates, self.plates),
            "read_precision": ratio(self.reads_on_plates, self.reads),
            "exact_read_accuracy": ratio(self.exact, self.plates_with_text),
            "one_edit_accuracy": ratio(self.one_edit, self.plates_with_text),
            "dropped_by_ocr": self.dropped,
            "false_reads_per_image": ratio(self.reads - self.reads_on_plates, self.images),
            "latency_ms_median": round(float(np.median(lat)), 2),
            "latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
            "skipped_files": len(self.skipped),
            "recall_by_width_1080p": {k: ratio(*v) for k, v in self.by_width.items()},
            "plates_by_width_1080p": {k: v[1] for k, v in self.by_width.items()},
            "recall_by_aspect": {k: ratio(*v) for k, v in self.by_aspect.items()},
            "plates_by_aspect": {k: v[1] for k, v in self.by_aspect.items()},
        }


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _yolo_samples(images_dir: Path) -> list[Sample]:
    labels_dir = images_dir.parent / "labels"
    samples = []
    for img in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        h, w = _image_size(img)
        truth = []
        label = labels_dir / (img.stem + ".txt")
        for line in label.read_text().splitlines() if label.exists() else []:
            parts = line.split()
            if len(parts) == 5 and parts[0] == "0":
                cx, cy, bw, bh = (float(v) for v in parts[1:])
                box = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
                truth.append(TruthBox(box, None))
        samples.append(Sample(img, truth))
    return samples


def _image_size(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    if img is None:
        return 0, 0
    return img.shape[0] * 2, img.shape[1] * 2


def _flat_samples(folder: Path) -> list[Sample]:
    samples = []
    for img in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        truth = []
        label = img.with_suffix(".txt")
        for line in label.read_text().splitlines() if label.exists() else []:
            parts = line.split()
            if len(parts) >= 6:
                x, y, w, h = (float(v) for v in parts[1:5])
                truth.append(TruthBox((x, y, x + w, y + h), parts[5].upper()))
        samples.append(Sample(img, truth))
    return samples


def load_dataset(path: str | Path, splits: tuple[str, ...] = ("valid", "test")) -> list[Sample]:
    """Find the samples under ``path`` in either layout (see module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder")
    if (root / "images").is_dir():
        return _yolo_samples(root / "images")
    split_dirs = [root / s / "images" for s in splits if (root / s / "images").is_dir()]
    if split_dirs:
        return [s for d in split_dirs for s in _yolo_samples(d)]
    samples = _flat_samples(root)
    if not samples:
        raise FileNotFoundError(f"{root}: no images with YOLO labels or name.txt truth found")
    return samples


def match(truth: list[TruthBox], boxes: list[tuple[float, float, float, float]],
          iou_min: float = 0.5) -> list[int]:
    """Greedy one-to-one matching: for each truth box, the index of its box (IoU >= iou_min) or -1."""
    used: set[int] = set()
    out = []
    for t in truth:
        best, best_iou = -1, iou_min
        for i, b in enumerate(boxes):
            v = iou(t.box, b)
            if i not in used and v >= best_iou:
                best, best_iou = i, v
        if best >= 0:
            used.add(best)
        out.append(best)
    return out


def evaluate(reader: PlateReader, samples: list[Sample], iou_min: float = 0.5) -> EvalResult:
    """Detector figures (every box), read figures (boxes the recogniser read) and read accuracy."""
    res = EvalResult()
    for sample in samples:
        image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
        if image is None:
            res.skipped.append(str(sample.image))
            continue
        t0 = time.perf_counter()
        dets = reader.detector.detect(image)
        texts = reader.recognizer.read([crop_plate(image, d) for d in dets]) if dets else []
        res.latencies_ms.append((time.perf_counter() - t0) * 1000)
        res.images += 1
        res.predictions += len(dets)
        res.plates += len(sample.truth)
        boxes = [(d.x1, d.y1, d.x2, d.y2) for d in dets]
        read = [i for i, t in enumerate(texts) if len(t.text) >= reader.min_chars]
        res.reads += len(read)
        res.reads_on_plates += sum(j >= 0 for j in match(sample.truth, [boxes[i] for i in read], iou_min))
        for truth, best in zip(sample.truth, match(sample.truth, boxes, iou_min), strict=True):
            res.plates_with_text += bool(truth.plate)
            res.count(truth.box, image.shape[1], best >= 0)
            if best < 0:
                continue
            res.detected += 1
            res.true_positives += 1
            if truth.plate:
                got = texts[best].text
                res.dropped += len(got) < reader.min_chars
                res.exact += got == truth.plate
                res.one_edit += edit_distance(got, truth.plate, 1) <= 1
    return res
