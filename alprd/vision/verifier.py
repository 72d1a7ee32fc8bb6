"""A second look at each detector box (``models/plate_verifier.onnx``).

The detector is run at a low threshold so that it misses few plates; that also
gives many false boxes (stickers, reflectors, badges, signs). A small CNN then
scores each box from a crop of it *with its surroundings* (a plate sits on a car
body, a badge does not look like one up close) and keeps the boxes it believes.
This cascade costs a fraction of a millisecond per candidate, far less than a
detector large enough to make the same call alone.

``context_crop`` is shared with ``scripts/train_verifier.py`` so that training
and inference cut exactly the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from alprd.vision.base import Detection, ModelError, PlateDetector, open_session

__all__ = ["CROP_H", "CROP_W", "OnnxVerifier", "VerifiedDetector", "apply_deltas", "context_crop"]

CROP_H, CROP_W = 40, 80
PAD_VALUE = 114
DEFAULT_FUSION = "0.5 0.5 0"  # no fitted fusion in the file: the mean of the two log-odds
_FIX = ("restore it with `git checkout -- models/plate_verifier.onnx`, retrain it with "
        "`python scripts/train_verifier.py` (see models/plate_verifier.md), or set "
        "vision.verifier_model = \"\" to run the detector alone")


def context_crop(image: np.ndarray, box: Sequence[float], height: int = CROP_H, width: int = CROP_W) -> np.ndarray:
    """The box plus context, warped to (height, width, 3) uint8.

    The region is centred on the box, 1.5x its width and its height plus half its
    width: a 2:1 plate comes with a strip of bumper all round, a long EU plate with
    proportionally more above and below. Pixels outside the image are grey.
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx, cy, rw, rh = (x1 + x2) / 2, (y1 + y2) / 2, 1.5 * w, h + 0.5 * w
    x0, y0 = round(cx - rw / 2), round(cy - rh / 2)
    x3, y3 = max(x0 + 2, round(cx + rw / 2)), max(y0 + 2, round(cy + rh / 2))
    ih, iw = image.shape[:2]
    part = image[max(y0, 0):min(y3, ih), max(x0, 0):min(x3, iw)]
    if part.size == 0:
        return np.full((height, width, 3), PAD_VALUE, np.uint8)
    pads = (max(0, -y0), max(0, y3 - ih), max(0, -x0), max(0, x3 - iw))
    if any(pads):
        part = cv2.copyMakeBorder(part, *pads, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    interp = cv2.INTER_AREA if part.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(part, (width, height), interpolation=interp)


def apply_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Move each side of each box by its delta, in units of the box's width (x) and height (y)."""
    wh = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
    return (boxes + deltas * np.concatenate([wh, wh], 1)).astype(np.float32)


# the second look's boxes besides the mirrored one: the candidate scaled about its centre (chosen on the
# held-out training photos, the far-plate design set and the design half of negatives/, plate_verifier.md)
SECOND_LOOK_SCALES = (1.12, 0.9)


def scale_boxes(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Boxes (n, 4) x1, y1, x2, y2 scaled by ``factor`` about their centres."""
    centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) * (factor / 2)
    return np.concatenate([centre - half, centre + half], axis=1)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class OnnxVerifier:
    """Scores boxes as plate (1) or not (0) with ``plate_verifier.onnx``."""

    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        self.model_path = Path(model_path)
        self._session = open_session(self.model_path, threads, "plate verifier model", _FIX)
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        if list(inp.shape[1:]) != [3, CROP_H, CROP_W] or len(out.shape) != 2 or out.shape[1] not in (1, 5):
            raise ModelError(f"plate verifier model {self.model_path} has input {inp.shape} and output "
                             f"{out.shape}; expected (N, 3, {CROP_H}, {CROP_W}) -> (N, 1) or (N, 5): {_FIX}")
        self._input = inp.name
        fusion = self._session.get_modelmeta().custom_metadata_map.get("fusion", DEFAULT_FUSION)
        try:
            self.fusion = tuple(float(v) for v in fusion.split())
        except ValueError:
            self.fusion = ()
        if len(self.fusion) != 3:
            raise ModelError(f"plate verifier model {self.model_path} has fusion metadata {fusion!r}; "
                             f"expected three numbers 'a b c': {_FIX}")

    def combine(self, det_scores: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """One plate probability per box from the detector's score and the verifier's.

        sigmoid(a logit(det) + b logit(verifier) + c), with (a, b, c) fitted by
        ``scripts/train_verifier.py`` on held-out training images and stored in the
        model's ``fusion`` metadata: how far to trust each model is learnt, not guessed.
        """
        a, b, c = self.fusion
        z = a * _logit(det_scores) + b * _logit(probs) + c
        return 1.0 / (1.0 + np.exp(-z))

    def assess(self, image: np.ndarray, boxes: Sequence[Sequence[float]],
               mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Plate probability (n,) of each box (x1, y1, x2, y2) in ``image`` (BGR uint8), and the boxes (n, 4)
        as the model corrects them (a model without a box head returns them unchanged).

        ``mirrored``: look at the crops flipped left-right (the box corrections are then not
        meaningful, and the boxes come back as given).
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros(0, np.float32), boxes
        crops = np.stack([context_crop(image, b) for b in boxes])
        if mirrored:
            crops = crops[:, :, ::-1]
        blob = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1 / 255)
        out = self._session.run(None, {self._input: blob})[0]
        if mirrored or out.shape[1] != 5:
            return out[:, 0], boxes
        return out[:, 0], apply_deltas(boxes, out[:, 1:5])

    def score(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """Plate probability of each box (x1, y1, x2, y2) in ``image`` (BGR uint8)."""
        return self.assess(image, boxes)[0]


class VerifiedDetector:
    """A :class:`PlateDetector`: ``candidates`` proposes boxes, ``verifier`` keeps the plates.

    A box's score is :meth:`OnnxVerifier.combine` of the detector's score and the
    verifier's probability; ``threshold`` applies to it. Either alone does worse: the
    verifier has seen only the 675 training photos, and the detector's low scores
    include real plates (models/plate_verifier.md). Boxes come back as the verifier
    corrected them; two that land on the same plate are merged (NMS at ``nms_iou``).

    A box whose score is at least ``second_look`` gets a second look: the verifier sees its
    crop mirrored, and the box 12% larger and 10% smaller (:data:`SECOND_LOOK_SCALES`), and
    the mean of the four log-odds replaces the first. A sticker or sign that looks like a
    plate once rarely does so from every view (each is new to the model's exact weights),
    while a plate does; the boxes far below the threshold, most of them, are not looked at
    again. 1 turns it off.
    """

    def __init__(self, candidates: PlateDetector, verifier: OnnxVerifier, threshold: float = 0.4,
                 nms_iou: float = 0.45, second_look: float = 1.0) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.candidates = candidates
        self.verifier = verifier
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self.second_look = float(second_look)

    def looks(self, image: np.ndarray, found: Sequence[Detection]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The verifier's plate probability of each candidate (second look included), the corrected
        boxes, and the fused scores :meth:`detect` thresholds.

        ``scripts/train_verifier.py`` fits the fusion to these same probabilities, so the weights
        match what the cascade computes.
        """
        given = [(d.x1, d.y1, d.x2, d.y2) for d in found]
        det_scores = np.array([d.score for d in found], np.float32)
        probs, boxes = self.verifier.assess(image, given)
        scores = self.verifier.combine(det_scores, probs)
        again = np.flatnonzero(scores >= self.second_look) if self.second_look < 1 else []
        if len(again):
            boxes_again = np.asarray(given, np.float32)[again]
            looks = [probs[again], self.verifier.assess(image, boxes_again, mirrored=True)[0]]
            scaled = np.concatenate([scale_boxes(boxes_again, f) for f in SECOND_LOOK_SCALES])
            looks += np.split(self.verifier.assess(image, scaled)[0], len(SECOND_LOOK_SCALES))  # one batch
            probs[again] = 1.0 / (1.0 + np.exp(-np.mean([_logit(p) for p in looks], axis=0)))
            scores = self.verifier.combine(det_scores, probs)
        return probs, boxes, scores

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Plates in a BGR uint8 image, best first, in original-image pixels."""
        found = self.candidates.detect(image)
        if not found:
            return []
        _, boxes, scores = self.looks(image, found)
        h, w = image.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        ok = (scores >= self.threshold) & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        if not ok.any():
            return []
        boxes, scores = boxes[ok], scores[ok]
        # two candidates corrected onto the same plate: keep the likelier
        rects = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
        keep = np.asarray(cv2.dnn.NMSBoxes(rects, scores.tolist(), self.threshold, self.nms_iou), np.int64).reshape(-1)
        kept = [Detection(*(float(v) for v in boxes[i]), float(scores[i])) for i in keep]
        return sorted(kept, key=lambda d: -d.score)

    def __repr__(self) -> str:
        return (f"VerifiedDetector({self.candidates!r}, {str(self.verifier.model_path)!r}, threshold={self.threshold}, "
                f"second_look={self.second_look})")
