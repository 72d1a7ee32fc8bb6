"""Level a plate seen from the side before it is read.

A plate in the next lane, or parked at the kerb, is seen at an angle: perspective makes its
rows slope (its top and bottom edges and its text line run up or down across the crop) while
its characters stay upright, and the detector's axis-aligned box is taller than the plate by
the slope times its width. Our recogniser, trained on mostly level plates, reads such a crop
worse as the slope grows (on held-out US crops sheared by 10 degrees: 120 of 143 exact, 134
after levelling; models/plate_ocr.md, stage 20). :func:`level` finds the slope by a
projection profile and undoes it with a vertical shear, then trims the rows the slope added.

Cheap: one Sobel and a gather over a 32-row copy of the crop, all slopes at once. The choices
(horizontal edges, the 10% margin, levelling from 3.5 degrees) were made on held-out US and
Brazilian training crops, level and sheared.
"""

from __future__ import annotations

import cv2
import numpy as np

_ROWS = 32                        # analysis height
_MAX_COLS = 96                    # analysis width at most
_SLOPES = np.tan(np.radians(np.arange(-20.0, 20.01, 1.0)))  # slopes tried, 1-degree steps, level in the middle
_BEAT_LEVEL = 1.1                 # a slope is taken when its profile is this much more peaked than level's


def text_slope(crop: np.ndarray) -> float:
    """The slope (dy/dx, image rows per column) of the crop's text rows, within +-20 degrees; 0 when
    no slope is clearly better than none.

    Horizontal edges (|d/dy|: the plate's top and bottom, the characters' tops and bottoms)
    summed along each sloped row give a row profile that is most peaked (largest sum of
    squares) at the plate's slope. A slope must beat level by 10%, as plates are level far
    more often than not. The outer sixths of the columns, where the box's margin shows the car
    around the plate, are left out.
    """
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h, w = gray.shape[:2]
    cols = int(min(_MAX_COLS, max(16, round(w * _ROWS / h))))
    small = cv2.resize(gray, (cols, _ROWS), interpolation=cv2.INTER_AREA).astype(np.float32)
    edges = np.abs(cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3))[:, cols // 6: cols - cols // 6]
    n = edges.shape[1]
    # in analysis pixels a slope t moves column x by t * (x - centre) * (rows / h) / (cols / w)
    xs = np.arange(n) + cols // 6 - cols / 2
    shift = np.rint(_SLOPES[:, None] * xs[None, :] * (_ROWS / h) / (cols / w)).astype(np.int64)  # [S, n]
    pad = int(np.abs(shift).max()) + 1
    padded = np.pad(edges, ((pad, pad), (0, 0))).ravel()
    at = (np.arange(_ROWS)[None, :, None] + pad + shift[:, None, :]) * n + np.arange(n)  # [S, rows, n], flat
    peaked = np.square(np.take(padded, at).sum(axis=2)).sum(axis=1)  # [S]
    best = int(np.argmax(peaked))
    return float(_SLOPES[best]) if peaked[best] >= _BEAT_LEVEL * peaked[len(_SLOPES) // 2] else 0.0


def level(crop: np.ndarray, min_degrees: float) -> np.ndarray:
    """The crop with its text rows levelled when they slope by at least ``min_degrees`` (0: never).

    The shear keeps the characters upright, as perspective leaves them; the rows that the slope
    added to the box (half the slope times the width, top and bottom) are trimmed, so the plate
    fills the recogniser's input again. Anything that is not a usable image is returned as is.
    """
    usable = isinstance(crop, np.ndarray) and crop.dtype == np.uint8 and min(crop.shape[:2], default=0) >= 8 \
        and (crop.ndim == 2 or (crop.ndim == 3 and crop.shape[2] == 3))
    if min_degrees <= 0 or not usable:  # the reader names what is wrong with an unusable crop
        return crop
    t = text_slope(crop)
    if abs(t) < np.tan(np.radians(min_degrees)):
        return crop
    h, w = crop.shape[:2]
    shear = np.float32([[1, 0, 0], [-t, 1, t * w / 2]])
    flat = cv2.warpAffine(crop, shear, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cut = min(int(abs(t) * w / 2), h // 4)
    return flat[cut:h - cut]
