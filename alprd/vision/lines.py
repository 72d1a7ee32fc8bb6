"""Find the two text lines of a stacked (two-line) plate, so a one-line recogniser can read each.

Motorcycle plates, many trailer plates and Brazilian motorcycle plates put the
registration on two rows (``ABC`` over ``1234``). Our recogniser reads one line
left to right, so :func:`split_lines` looks for a horizontal gap between two
similar-height bands of character strokes and returns each line as its own crop,
trimmed to the text and padded with the plate's background to the 2:1 shape the
recogniser expects. It is cheap (one Sobel on a 64-row copy) and only proposes:
:class:`alprd.vision.ocr.OnnxRecognizer` keeps the two-line reading only when it is
more confident than the whole-crop reading.
"""

from __future__ import annotations

import cv2
import numpy as np

_ROWS = 64                 # analysis height
_MIN_LINE = 0.18           # each line at least this fraction of the crop height
_MAX_LINE_RATIO = 1.6      # the taller line at most this many times the shorter
_GAP = 0.5                 # gap row energy at most this fraction of the weaker line's peak


def _run_around(mask: np.ndarray, i: int) -> tuple[int, int]:
    """The contiguous True run of ``mask`` that contains index ``i``: (first, last + 1)."""
    lo, hi = i, i + 1
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi < len(mask) and mask[hi]:
        hi += 1
    return lo, hi


def _line_bands(gray: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Row ranges (in ``gray``'s rows) of the top and bottom text lines, or None for one line.

    The gap is the row, between 20% and 80% of the height, with the deepest dip in
    stroke energy relative to the strongest rows within 35% of the height above and
    below it (so a state name or slogan further away does not count as a line).
    """
    h, w = gray.shape
    edges = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
    margin = max(1, int(0.06 * w))                      # the plate frame's vertical edges
    energy = edges[:, margin:w - margin].mean(axis=1)
    energy = np.convolve(energy, np.ones(3, np.float32) / 3, mode="same")
    reach = max(2, int(0.35 * h))
    padded = np.concatenate([np.zeros(reach, np.float32), energy, np.zeros(reach, np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, reach)
    above = windows[:h].max(axis=1)                     # max over rows g-reach .. g-1
    below = windows[reach + 1:reach + 1 + h].max(axis=1)  # max over rows g+1 .. g+reach
    rows = np.arange(int(0.2 * h), int(0.8 * h))
    if len(rows) == 0 or energy.max() <= 0:
        return None
    dip = np.minimum(above[rows], below[rows]) / (energy[rows] + 1e-3 * energy.max())
    gap = int(rows[np.argmax(dip)])
    if dip.max() < 1 / _GAP:
        return None
    bands = []
    for lo, hi in ((max(0, gap - reach), gap), (gap + 1, min(h, gap + 1 + reach))):
        part = energy[lo:hi]
        peak = int(np.argmax(part))
        a, b = _run_around(part > 0.4 * part[peak], peak)
        bands.append((a + lo, b + lo))
    heights = [b - a for a, b in bands]
    if min(heights) < _MIN_LINE * h or max(heights) > _MAX_LINE_RATIO * min(heights):
        return None
    return bands[0], bands[1]


def _line_crop(crop: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
    """Cut one text line (``rows`` in crop pixels) out of ``crop``, trim to its text, pad to 2:1."""
    h, w = crop.shape[:2]
    pad = 0.12 * (rows[1] - rows[0])
    line = crop[max(0, int(rows[0] - pad)):min(h, int(np.ceil(rows[1] + pad)))]
    gray = cv2.cvtColor(line, cv2.COLOR_BGR2GRAY)
    cols = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)).mean(axis=0)
    margin = max(1, int(0.04 * w))
    cols[:margin] = cols[w - margin:] = 0
    ink = np.flatnonzero(cols > 0.25 * cols.max()) if cols.max() > 0 else np.array([0, w - 1])
    xpad = int(0.5 * len(line))
    line = line[:, max(0, ink[0] - xpad):min(w, ink[-1] + 1 + xpad)]
    # pad to 2:1 with the plate's background colour, so that characters keep their shape
    lh, lw = line.shape[:2]
    border = np.concatenate([line[0], line[-1], line[:, 0], line[:, -1]])
    colour = tuple(int(c) for c in np.median(border, axis=0))
    dy, dx = max(0, lw // 2 - lh), max(0, 2 * lh - lw)
    return cv2.copyMakeBorder(line, dy // 2, dy - dy // 2, dx // 2, dx - dx // 2, cv2.BORDER_CONSTANT, value=colour)


def find_lines(crop: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Row ranges ``((top0, top1), (bottom0, bottom1))`` of a two-line plate's text, in crop pixels.

    None when ``crop`` (BGR uint8, any size) shows one line, or is not a usable image.
    """
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 \
            or crop.shape[2] != 3 or min(crop.shape[:2]) < 8:
        return None
    h, w = crop.shape[:2]
    scale = _ROWS / h
    small = cv2.resize(crop, (max(8, round(w * scale)), _ROWS), interpolation=cv2.INTER_AREA)
    bands = _line_bands(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32))
    if bands is None:
        return None
    (a, b), (c, d) = bands
    return (int(a / scale), int(np.ceil(b / scale))), (int(c / scale), int(np.ceil(d / scale)))


def split_lines(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(top line, bottom line) BGR crops of a two-line plate, each 2:1, or None for one line."""
    lines = find_lines(crop)
    if lines is None:
        return None
    return _line_crop(crop, lines[0]), _line_crop(crop, lines[1])
