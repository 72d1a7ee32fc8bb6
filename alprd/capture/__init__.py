"""Frame sources behind one small protocol.

A source is opened, then ``read()`` is called in a capture thread until it
returns ``None`` (end of stream). Sources that replay files pace themselves at
their own frame rate when ``realtime`` is set, so that a replay behaves like a
camera (and the pipeline's drop-oldest back-pressure is exercised).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from alprd import synth
from alprd.config import CameraConfig
from alprd.imageio import ImageError, read_image
from alprd.log import get_logger

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class CaptureError(RuntimeError):
    """The source cannot be opened or read; the message names the device and the fix."""


class DeviceError(CaptureError):
    """A camera problem with its likely cause and fix kept apart (for ``alprd diag``)."""

    def __init__(self, cause: str, fix: str):
        super().__init__(f"{cause}: {fix}")
        self.cause, self.fix = cause, fix


@dataclass
class Frame:
    image: np.ndarray
    index: int
    t: float  # seconds on the source's own clock (file position, or monotonic for cameras)
    wall: float = field(default_factory=time.time)  # UTC epoch when captured


class FrameSource(Protocol):
    fps: float
    live: bool  # frames come at their own pace (camera, realtime replay): drop, don't wait

    def open(self) -> None: ...

    def read(self) -> Frame | None:
        """Block until the next frame; ``None`` means the stream has ended."""
        ...

    def close(self) -> None: ...


class _Paced:
    """Numbers frames on the source's clock; when realtime, no faster than ``fps``."""

    def __init__(self, fps: float, realtime: bool):
        self.fps = fps
        self.period = 1.0 / fps
        self.realtime = realtime
        self._next = 0.0
        self.index = 0

    def frame(self, image: np.ndarray) -> Frame:
        """Wait for the frame's slot (when realtime) and number it on the source's clock."""
        if self.realtime:
            now = time.monotonic()
            if self._next > now:
                time.sleep(self._next - now)
            self._next = max(now, self._next) + self.period
        frame = Frame(image, self.index, self.index / self.fps)
        self.index += 1
        return frame


class VideoFileSource:
    """Replays a video file (anything OpenCV's FFmpeg backend reads)."""

    def __init__(self, cfg: CameraConfig):
        self.cfg = cfg
        self.fps = cfg.fps
        self.live = cfg.realtime
        self._cap: cv2.VideoCapture | None = None
        self._pace = _Paced(cfg.fps, cfg.realtime)

    def open(self) -> None:
        path = Path(self.cfg.path)
        if not path.is_file():
            raise CaptureError(f"camera.path = {str(path)!r}: no such video file (fix camera.path)")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise CaptureError(f"camera.path = {str(path)!r}: OpenCV cannot decode this video")
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        if file_fps and file_fps > 0:
            self.fps = file_fps
            self._pace = _Paced(file_fps, self.cfg.realtime)
        self._cap = cap

    def read(self) -> Frame | None:
        assert self._cap is not None, "open() first"
        if self.cfg.frames and self._pace.index >= self.cfg.frames:
            return None
        ok, image = self._cap.read()
        if not ok and self.cfg.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        if not ok:
            return None
        return self._pace.frame(image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


class ImageFolderSource:
    """Replays the images of a folder in name order; unreadable or oversized files are skipped."""

    def __init__(self, cfg: CameraConfig, on_bad_file=None):
        self.cfg = cfg
        self.fps = cfg.fps
        self.live = cfg.realtime
        self._files: list[Path] = []
        self._pos = 0
        self._pace = _Paced(cfg.fps, cfg.realtime)
        self.skipped: list[Path] = []
        self._on_bad_file = on_bad_file
        self.log = get_logger("alprd.capture").bind(camera=cfg.id)

    def open(self) -> None:
        folder = Path(self.cfg.path)
        if not folder.is_dir():
            raise CaptureError(f"camera.path = {str(folder)!r}: not a folder of images (fix camera.path)")
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise CaptureError(f"camera.path = {str(folder)!r}: holds no .jpg/.png images")

    def read(self) -> Frame | None:
        while True:
            if self.cfg.frames and self._pace.index >= self.cfg.frames:
                return None
            if self._pos >= len(self._files):
                if not self.cfg.loop or not self._files:
                    return None
                self._pos = 0
            path = self._files[self._pos]
            self._pos += 1
            try:
                image = read_image(path)
            except ImageError as err:
                self.log.warning("image_skipped", error=str(err))
                self.skipped.append(path)
                if self._on_bad_file:
                    self._on_bad_file(path)
                continue
            return self._pace.frame(image)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Car:
    plate: str
    start: int  # first frame it is visible
    frames: int  # how many frames it stays
    y: float  # vertical position, fraction of height
    width_px: int  # plate width in pixels
    direction: int  # +1 left to right, -1 right to left


class SyntheticSource:
    """Renders a street with cars passing, each carrying a known plate.

    ``plates_shown`` is the truth, so the demo and tests can score the reads.
    Deterministic for a given seed.
    """

    def __init__(self, cfg: CameraConfig, seed: int = 7, car_every: int = 20, car_frames: int = 14):
        self.cfg = cfg
        self.fps = cfg.fps
        self.live = cfg.realtime
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self._pace = _Paced(cfg.fps, cfg.realtime)
        self._car_every, self._car_frames = car_every, car_frames
        self._cars: list[_Car] = []
        self._plates: dict[str, np.ndarray] = {}
        self._background: np.ndarray | None = None

    @property
    def plates_shown(self) -> list[str]:
        return [c.plate for c in self._cars if c.start < self._pace.index]

    def open(self) -> None:
        self._background = synth.street_scene(self.cfg.width, self.cfg.height, self._rng)

    def upcoming_plates(self, n: int) -> list[str]:
        """The plates of the first ``n`` cars (after ``open``), before they pass: a fresh source with the
        same seed shows the same ones, so the demo and tests can put them on a hotlist."""
        self._car_at((n - 1) * self._car_every)
        return [c.plate for c in self._cars[:n]]

    def _car_at(self, index: int) -> _Car | None:
        k = index // self._car_every
        while len(self._cars) <= k:
            j = len(self._cars)
            text = synth.random_plate_text(self._rng)
            self._plates[text] = synth.render_plate(text, self._rng)
            width = int(self.cfg.width * self._rng.uniform(0.06, 0.1))
            self._cars.append(_Car(text, j * self._car_every, self._car_frames,
                                   float(self._rng.uniform(0.55, 0.75)), width, int(self._rng.choice([-1, 1]))))
        car = self._cars[k]
        return car if index - car.start < car.frames else None

    def read(self) -> Frame | None:
        assert self._background is not None, "open() first"
        if self.cfg.frames and self._pace.index >= self.cfg.frames:
            return None
        image = self._background.copy()
        car = self._car_at(self._pace.index)
        if car is not None:
            progress = (self._pace.index - car.start + 0.5) / car.frames
            x = 0.2 + 0.6 * (progress if car.direction > 0 else 1 - progress)
            rng = np.random.default_rng(self._seed * 100_003 + car.start)  # same car colour each frame
            synth.paste_plate_on_car(image, self._plates[car.plate],
                                     (int(x * self.cfg.width), int(car.y * self.cfg.height)),
                                     car.width_px, rng)
        return self._pace.frame(image)

    def close(self) -> None:
        pass


LIVE_SOURCES = ("usb", "rtsp", "picamera")


def open_device(cfg: CameraConfig) -> FrameSource:
    """The configured source itself, without ROI crop or reconnecting (diagnostics use this)."""
    if cfg.source == "synthetic":
        return SyntheticSource(cfg)
    if cfg.source == "video":
        return VideoFileSource(cfg)
    if cfg.source == "images":
        return ImageFolderSource(cfg)
    if cfg.source == "picamera":
        from alprd.capture.picamera import PiCamera  # picamera2 is only imported on open()

        return PiCamera(cfg)
    from alprd.capture.opencv_camera import OpenCVCamera

    return OpenCVCamera(cfg)


def open_source(cfg: CameraConfig) -> FrameSource:
    """Build the source the config names (not yet opened): ROI applied, live cameras reopened."""
    from alprd.capture.reconnect import Reconnecting
    from alprd.capture.roi import RoiCrop

    def make() -> FrameSource:
        device = open_device(cfg)
        return RoiCrop(device, cfg.roi) if cfg.roi else device

    if cfg.source in LIVE_SOURCES:
        return Reconnecting(make, f"{cfg.id} ({cfg.source})", cfg.reopen_backoff_max_s)
    return make()
