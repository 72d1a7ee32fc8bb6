"""A second, zoomed detector pass over the part of the frame where distant plates are.

A plate 25-40 px wide in a 1920x1080 frame is 10-16 px at the detector's 768-pixel input:
too small for it. Ahead of a patrol car, the far plates sit near the middle of the view
(they converge on the road's vanishing point), so one more pass over a window around it,
scaled up twice as much, shows those plates at 20-32 px for the cost of one more detector
run of the same input size. Its boxes are mapped back to the frame and merged with the
whole-frame pass (a plate both passes find is kept once, with the better score). Only its
small boxes count: a wide one is a plate the whole-frame pass sees as well, and a box inside
a wide one the whole-frame pass found is a part of that plate (its state name, a sticker).
"""

from __future__ import annotations

import cv2
import numpy as np

from alprd.vision.base import Detection, PlateDetector


class ZoomedDetector:
    """A :class:`PlateDetector`: ``inner`` on the whole frame, then ``zoomed`` (default: ``inner``; another
    input size is another detector) on ``window`` (x1, y1, x2, y2 as fractions of the frame); the window's
    boxes up to ``max_width`` of the frame's width and not inside a wider whole-frame box join the others,
    merged by NMS at ``nms_iou``."""

    def __init__(self, inner: PlateDetector, window: tuple[float, float, float, float],
                 nms_iou: float = 0.45, max_width: float = 1 / 24, zoomed: PlateDetector | None = None) -> None:
        x1, y1, x2, y2 = window
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError(f"zoom window {window} must be x1 < x2, y1 < y2, all within 0..1 of the frame")
        self.inner = inner
        self.zoomed = zoomed or inner
        self.window = (float(x1), float(y1), float(x2), float(y2))
        self.nms_iou = float(nms_iou)
        self.max_width = float(max_width)  # of the frame's width: 80 px of 1920

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self.inner.detect(image)
        h, w = image.shape[:2]
        x1, y1 = int(self.window[0] * w), int(self.window[1] * h)
        x2, y2 = int(np.ceil(self.window[2] * w)), int(np.ceil(self.window[3] * h))
        if x2 - x1 < 2 or y2 - y1 < 2:
            return found
        zoomed = [Detection(d.x1 + x1, d.y1 + y1, d.x2 + x1, d.y2 + y1, d.score)
                  for d in self.zoomed.detect(np.ascontiguousarray(image[y1:y2, x1:x2]))
                  if d.width <= self.max_width * w]
        near = [f for f in found if f.width > self.max_width * w]  # plates the whole-frame pass sees well
        zoomed = [z for z in zoomed if not any(_inside(z, f) for f in near)]
        if not zoomed:
            return found
        every = found + zoomed
        rects = [[d.x1, d.y1, d.width, d.height] for d in every]
        keep = np.asarray(cv2.dnn.NMSBoxes(rects, [d.score for d in every], 0.0, self.nms_iou), np.int64).reshape(-1)
        return sorted((every[i] for i in keep), key=lambda d: -d.score)

    def __repr__(self) -> str:
        return f"ZoomedDetector({self.inner!r}, window={self.window})"


def _inside(a: Detection, b: Detection, share: float = 0.6) -> bool:
    """Whether most of box ``a`` lies within box ``b``."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    return ix * iy >= share * a.width * a.height
