"""USB (V4L2) and RTSP cameras through OpenCV, with the config's resolution, rate and exposure.

Errors name the likely cause and the fix a technician can apply on site:
wrong device path, missing group membership, device busy, unreachable stream.
A failed grab raises :class:`~alprd.capture.CaptureError`; reopening is the job
of :class:`~alprd.capture.reconnect.Reconnecting`.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import cv2

from alprd.capture import DeviceError, Frame
from alprd.config import CameraConfig

V4L2_EXPOSURE_MANUAL, V4L2_EXPOSURE_AUTO = 1, 3  # V4L2_CID_EXPOSURE_AUTO values
V4L2_EXPOSURE_UNIT_US = 100  # V4L2_CID_EXPOSURE_ABSOLUTE counts 100 µs steps


def redact_url(url: str) -> str:
    """The URL without its password, for logs and screens."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def usb_target(path: str) -> str | int:
    """``/dev/video0`` stays a path; a bare number is a camera index."""
    return int(path) if path.isdigit() else (path or "/dev/video0")


def check_device_node(path: str) -> None:
    """Fail early with the fix when the /dev node is missing or not ours to open."""
    if not os.path.exists(path):
        raise DeviceError(f"no camera at {path}",
                          "check the USB cable; list cameras with `v4l2-ctl --list-devices` or "
                          "`ls -l /dev/v4l/by-id/ /dev/video*` and set camera.path")
    if not os.access(path, os.R_OK | os.W_OK):
        raise DeviceError(f"permission denied on {path}",
                          "add the service user to the video group: `sudo usermod -aG video alprd`, "
                          "then restart alprd")


class OpenCVCamera:
    """``camera.source = "usb"`` or ``"rtsp"``; frames carry monotonic time."""

    def __init__(self, cfg: CameraConfig):
        if cfg.source not in ("usb", "rtsp"):
            raise ValueError(f"OpenCVCamera serves usb and rtsp, not {cfg.source!r}")
        self.cfg = cfg
        self.fps = cfg.fps
        self.name = redact_url(cfg.path) if cfg.source == "rtsp" else str(usb_target(cfg.path))
        self.settings: dict[str, Any] = {}  # what the device actually accepted
        self._cap: cv2.VideoCapture | None = None
        self._index = 0

    def open(self) -> None:
        cfg = self.cfg
        if cfg.source == "usb":
            target = usb_target(cfg.path)
            if isinstance(target, str):
                check_device_node(target)
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        else:
            if not cfg.path:
                raise DeviceError("camera.path is empty", "set camera.path to the rtsp:// URL of the camera")
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{cfg.rtsp_transport}"
            timeout_ms = int(cfg.read_timeout_s * 1000)
            cap = cv2.VideoCapture(cfg.path, cv2.CAP_FFMPEG, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])
        if not cap.isOpened():
            cap.release()
            raise self._open_failure()
        if cfg.source == "usb":
            self._configure(cap)
        self.settings = {
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": round(cap.get(cv2.CAP_PROP_FPS), 2), "backend": cap.getBackendName(),
        }
        if self.settings["fps"] > 0:
            self.fps = self.settings["fps"]
        self._cap = cap

    def _configure(self, cap: cv2.VideoCapture) -> None:
        cfg = self.cfg
        if cfg.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a stale queue
        if cfg.exposure_us:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_MANUAL)
            cap.set(cv2.CAP_PROP_EXPOSURE, max(1, cfg.exposure_us // V4L2_EXPOSURE_UNIT_US))
        else:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_AUTO)

    def _open_failure(self) -> DeviceError:
        if self.cfg.source == "usb":
            return DeviceError(f"{self.name} exists but cannot be opened for capture",
                               "it is busy (is alprd running? `sudo fuser -v " + self.name + "`) or is "
                               "not a capture node (a camera's second /dev/videoN is metadata: try the first)")
        return DeviceError(f"cannot open stream {self.name}",
                           "check the URL, user and password, that the camera answers "
                           "(`ping` its address) and that it streams H.264/H.265; try "
                           "camera.rtsp_transport = \"udp\" if tcp is refused")

    def read(self) -> Frame:
        assert self._cap is not None, "open() first"
        ok, image = self._cap.read()
        if not ok or image is None:
            raise DeviceError(f"no frame from {self.name}",
                              "camera unplugged, powered off or stream down; it is reopened automatically")
        frame = Frame(image, self._index, time.monotonic())
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
