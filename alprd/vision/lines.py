"""Find the two text lines of a stacked (two-line) plate, so a one-line recogniser can read each.

Motorcycle plates, many trailer plates and Brazilian motorcycle plates put the
registration on two rows (``ABC`` over ``1234``). Our recogniser reads one line
left to right, so :func:`split_lines` looks for a horizontal gap between two
similar-height bands of character strokes and returns each line as its own crop,
trimmed to the text and padded with the plate's background to the 2:1 shape the
recogniser expects. It is cheap (a Sobel and a few row statistics on the
recogniser's own 64x128 input) and only proposes: :class:`alprd.vision.ocr.OnnxRecognizer`
keeps the two-line reading when both lines are read with confidence >= 0.5.
"""

from __future__ import annotations

import cv2
import numpy as np

_ROWS, _COLS = 64, 128     # analysis size (the recogniser's input size)
_MIN_LINE = 0.18           # each line at least this fraction of the crop height
_MAX_LINE_RATIO = 1.3      # the taller line at most this many times the shorter
_GAP = 0.4                 # gap row energy at most this fraction of the weaker line's peak


def _run_around(values: list[float], i: int, floor: float) -> tuple[int, int]:
    """The contiguous run of ``values`` above ``floor`` that contains index ``i``: (first, last + 1).

    Plain Python: on the 64 rows analysed this beats numpy's per-call overhead.
    """
    lo, hi = i, i + 1
    while lo > 0 and values[lo - 1] > floor:
        lo -= 1
    while hi < len(values) and values[hi] > floor:
        hi += 1
    return lo, hi


def _line_bands(gray: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Row ranges (in ``gray``'s rows) of the top and bottom text lines, or None for one line.

    The gap is a row, between 20% and 80% of the height, where stroke energy dips
    well below the strongest rows within 35% of the height above and below it; the
    deepest such dip whose neighbouring bands look like two similar text lines wins
    (the dip under a state name has a thin band above it, and does not).
    """
    h, w = gray.shape
    edges = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
    margin = max(1, int(0.06 * w))                      # the plate frame's vertical edges
    energy = cv2.blur(edges[:, margin:w - margin].mean(axis=1, keepdims=True), (1, 3))[:, 0]
    if energy.max() <= 0:
        return None
    reach = max(2, int(0.35 * h))
    # running maxima over the `reach` rows above (ending at g-1) and below (starting at g+1) row g
    kernel = np.ones((reach, 1), np.uint8)
    above = np.r_[0, cv2.dilate(energy[:, None], kernel, anchor=(0, reach - 1),
                                borderType=cv2.BORDER_CONSTANT, borderValue=0)[:-1, 0]]
    below = np.r_[cv2.dilate(energy[:, None], kernel, anchor=(0, 0),
                             borderType=cv2.BORDER_CONSTANT, borderValue=0)[1:, 0], 0]
    rows = np.arange(int(0.2 * h), int(0.8 * h))
    dip = np.minimum(above[rows], below[rows]) / (energy[rows] + 1e-3 * energy.max())
    deep = np.flatnonzero(dip >= 1 / _GAP)
    values = energy.tolist()
    for j in deep[np.argsort(-dip[deep])][:8]:          # deepest dips first
        bands = _bands_around(values, int(rows[j]), reach)
        if bands is not None:
            return bands
    return None


def _bands_around(energy: list[float], gap: int, reach: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The text bands just above and below row ``gap``, if they look like two lines of one plate."""
    h = len(energy)
    bands = []
    for lo, hi in ((max(0, gap - reach), gap), (gap + 1, min(h, gap + 1 + reach))):
        part = energy[lo:hi]
        peak = max(range(len(part)), key=part.__getitem__)
        a, b = _run_around(part, peak, 0.4 * part[peak])
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


def _usable(image) -> bool:
    return (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and min(image.shape[:2]) >= 8)


def find_lines(crop: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Row ranges ``((top0, top1), (bottom0, bottom1))`` of a two-line plate's text, in crop pixels.

    None when ``crop`` (BGR uint8, any size) shows one line, or is not a usable image.
    A crop already at the recogniser's 64x128 input size is analysed as it is.
    """
    if not _usable(crop):
        return None
    h, w = crop.shape[:2]
    small = crop if (h, w) == (_ROWS, _COLS) else cv2.resize(crop, (_COLS, _ROWS), interpolation=cv2.INTER_LINEAR)
    bands = _line_bands(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32))
    if bands is None:
        return None
    k = h / _ROWS
    return tuple((int(a * k), int(np.ceil(b * k))) for a, b in bands)  # type: ignore[return-value]


def split_lines(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(top line, bottom line) BGR crops of a two-line plate, each 2:1, or None for one line."""
    rows = find_lines(crop)
    return None if rows is None else (_line_crop(crop, rows[0]), _line_crop(crop, rows[1]))


def split_for_reader(crop: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`split_lines` for the recogniser, which already has ``small``, its input-sized copy of ``crop``.

    The lines are found on ``small`` and cut from ``crop`` scaled down to at most
    ``small``'s height: large sharp line crops read worse (62% against 88% exact on
    225-px-high rendered plates), as nothing like them is trained on.
    """
    rows = find_lines(small)
    if rows is None or not _usable(crop):
        return None
    h, w = crop.shape[:2]
    rows_s = small.shape[0]
    src = crop if h <= rows_s else cv2.resize(crop, (max(1, round(w * rows_s / h)), rows_s),
                                               interpolation=cv2.INTER_AREA)
    k = src.shape[0] / rows_s
    return tuple(_line_crop(src, (int(a * k), int(np.ceil(b * k)))) for a, b in rows)  # type: ignore[return-value]
