"""Raspberry Pi camera modules through picamera2 (the ``pi`` extra), imported only when used.

picamera2 is the supported libcamera binding on Raspberry Pi OS. Its "RGB888"
format is BGR in memory, which is what OpenCV and our models expect.
"""

from __future__ import annotations

import time
from typing import Any

from alprd.capture import DeviceError, Frame
from alprd.config import CameraConfig


def camera_controls(cfg: CameraConfig) -> dict[str, Any]:
    """libcamera controls for the configured frame rate and shutter."""
    frame_us = int(1_000_000 / cfg.fps)
    controls: dict[str, Any] = {"FrameDurationLimits": (frame_us, frame_us)}
    if cfg.exposure_us:
        # A fixed short shutter freezes moving plates; gain makes up the light.
        controls.update(AeEnable=False, ExposureTime=min(cfg.exposure_us, frame_us))
    return controls


class PiCamera:
    """``camera.source = "picamera"``: the CSI camera module of a Raspberry Pi."""

    def __init__(self, cfg: CameraConfig):
        self.cfg = cfg
        self.fps = cfg.fps
        self.name = f"picamera{cfg.path or '0'}"
        self._cam = None
        self._index = 0

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise DeviceError("picamera2 is not installed",
                              "on Raspberry Pi OS: `sudo apt install python3-picamera2` and create the venv "
                              "with --system-site-packages, or `pip install 'alprd[pi]'`") from None
        try:
            cam = Picamera2(int(self.cfg.path or 0))
            config = cam.create_video_configuration(
                main={"size": (self.cfg.width, self.cfg.height), "format": "RGB888"},
                controls=camera_controls(self.cfg), buffer_count=2)
            cam.configure(config)
            cam.start()
        except (RuntimeError, IndexError, OSError) as err:
            raise DeviceError(f"the Pi camera cannot be started ({err})",
                              "check the ribbon cable and `rpicam-hello --list-cameras`; the service user "
                              "needs the video group (`sudo usermod -aG video alprd`)") from None
        self._cam = cam

    def read(self) -> Frame:
        assert self._cam is not None, "open() first"
        try:
            image = self._cam.capture_array("main")
        except (RuntimeError, OSError) as err:
            raise DeviceError(f"no frame from {self.name} ({err})", "it is reopened automatically") from None
        frame = Frame(image, self._index, time.monotonic())
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cam is not None:
            self._cam.stop()
            self._cam.close()
            self._cam = None
