"""Analyse only the part of the frame where plates can be (``camera.roi``).

Cropping before inference saves time on a small device and keeps sky, dashboard
and far-away traffic out. Boxes of reads are then relative to the ROI.
"""

from __future__ import annotations

from alprd.capture import CaptureError, Frame, FrameSource

Roi = tuple[int, int, int, int]


def clip_roi(roi: Roi, width: int, height: int) -> Roi | None:
    """The part of ``roi`` (x, y, w, h) inside a width x height frame; None if nothing is."""
    x, y, w, h = roi
    x2, y2 = min(x + w, width), min(y + h, height)
    if x >= width or y >= height or x2 <= x or y2 <= y:
        return None
    return x, y, x2 - x, y2 - y


class RoiCrop:
    """Wraps a source; every frame comes out cropped to the region of interest."""

    def __init__(self, inner: FrameSource, roi: Roi):
        self.inner = inner
        self.roi = roi

    @property
    def fps(self) -> float:
        return self.inner.fps

    def open(self) -> None:
        self.inner.open()

    def read(self) -> Frame | None:
        frame = self.inner.read()
        if frame is None:
            return None
        h, w = frame.image.shape[:2]
        box = clip_roi(self.roi, w, h)
        if box is None:
            raise CaptureError(f"camera.roi = {list(self.roi)} lies outside the {w}x{h} frame: "
                               "fix camera.roi (x, y, width, height in pixels of the full frame)")
        x, y, bw, bh = box
        return Frame(frame.image[y:y + bh, x:x + bw], frame.index, frame.t, frame.wall)

    def close(self) -> None:
        self.inner.close()
