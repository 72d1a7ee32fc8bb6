"""``diag camera``: open the configured camera, measure its real frame rate, save a snapshot.

The snapshot is the full frame with the ROI outlined and the plates the models
found drawn in, so the technician can check aim and focus over SSH (copy the
JPEG off with scp). Brightness and sharpness figures help judge exposure and focus.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from alprd.capture import CaptureError, DeviceError, Frame, open_device
from alprd.capture.roi import clip_roi
from alprd.config import Config
from alprd.diag import Area, Check, DiagOptions
from alprd.vision.base import ModelError

MIN_FPS_SHARE = 0.8  # below this share of the expected rate: WARN
DARK, BRIGHT = 40, 215  # mean grey level limits
BLURRY = 20.0  # variance of the Laplacian below this: likely out of focus
SNAPSHOT_MODE = 0o640  # plates may be in view: not for everyone's eyes


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: high for crisp edges, low for a blurred image."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def measure_fps(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def check(config: Config, options: DiagOptions) -> list[Check]:
    area = Area("camera")
    cfg = config.camera
    source = open_device(cfg)
    try:
        source.open()
    except DeviceError as err:
        area.fail("open", f"{cfg.source} {cfg.path or '(default)'}", err.cause, err.fix)
        return area.checks
    except CaptureError as err:
        area.fail("open", f"{cfg.source} {cfg.path}", str(err), "fix camera.path / camera.source")
        return area.checks
    try:
        last, times = _grab(source, options.seconds)
    finally:
        source.close()
    _report_open(area, cfg, source, last)
    if last is None:
        area.fail("frames", f"none in {options.seconds:g} s",
                  "the camera opened but sends no frames: in use by the running daemon, stream stalled, "
                  "USB bandwidth or an unsupported mode",
                  "stop alprd first (`sudo systemctl stop alprd`); else replug the camera, try "
                  "camera.fourcc = \"MJPG\" or a lower resolution")
        return area.checks
    _report_rate(area, source.fps, times)
    _report_image(area, last.image)
    _snapshot(area, config, options, last.image)
    return area.checks


def _grab(source, seconds: float) -> tuple[Frame | None, list[float]]:
    """Read for ``seconds``: the last frame and the arrival time of each frame."""
    last, times = None, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = source.read()
        except CaptureError:
            break
        if frame is None:
            break
        times.append(time.monotonic())
        last = frame
    return last, times


def _report_open(area: Area, cfg, source, last: Frame | None) -> None:
    what = f"{cfg.source} {getattr(source, 'name', cfg.path)}".strip()
    if last is None:
        area.ok("open", what)
        return
    h, w = last.image.shape[:2]
    area.ok("open", f"{what}, {w}x{h}")
    if cfg.source in ("usb", "picamera") and (w, h) != (cfg.width, cfg.height):
        area.warn("resolution", f"{w}x{h}, config asks {cfg.width}x{cfg.height}",
                  "the camera does not offer the configured mode and picked another",
                  "list its modes with `v4l2-ctl --list-formats-ext` and set camera.width/height/fourcc")


def _report_rate(area: Area, expected: float, times: list[float]) -> None:
    fps = measure_fps(times)
    value = f"{fps:.1f} fps measured over {len(times)} frames (expected {expected:g})"
    if fps >= expected * MIN_FPS_SHARE:
        area.ok("frame rate", value)
    else:
        area.warn("frame rate", value,
                  "fewer frames than configured: in low light auto-exposure lengthens the shutter; "
                  "uncompressed USB video at high resolution exceeds USB 2 bandwidth",
                  "set camera.exposure_us (e.g. 1000), camera.fourcc = \"MJPG\", or a lower resolution/fps")


def _report_image(area: Area, image: np.ndarray) -> None:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mean = float(gray.mean())
    if mean < DARK:
        area.warn("brightness", f"mean {mean:.0f}/255", "image very dark (night, lens cap, IR light off)",
                  "check the IR illuminator and lens; raise camera.exposure_us within motion-blur limits")
    elif mean > BRIGHT:
        area.warn("brightness", f"mean {mean:.0f}/255", "image over-exposed (sun into the lens, shutter too long)",
                  "re-aim away from the sky or lower camera.exposure_us")
    else:
        area.ok("brightness", f"mean {mean:.0f}/255")
    sharp = sharpness(gray)
    if sharp < BLURRY:
        area.warn("focus", f"sharpness {sharp:.0f}", "image blurred (focus, dirty or fogged lens, vibration)",
                  "clean the lens and refocus on a plate at the usual distance; check the snapshot")
    else:
        area.ok("focus", f"sharpness {sharp:.0f} (higher is sharper; compare after refocusing)")


def _snapshot(area: Area, config: Config, options: DiagOptions, image: np.ndarray) -> None:
    canvas = image.copy()
    x0 = y0 = 0
    view = image
    roi = config.camera.roi and clip_roi(config.camera.roi, image.shape[1], image.shape[0])
    if roi:
        x0, y0, w, h = roi
        view = image[y0:y0 + h, x0:x0 + w]
        cv2.rectangle(canvas, (x0, y0), (x0 + w - 1, y0 + h - 1), (0, 255, 255), 2)
    reader = options.reader
    if reader is None:
        from alprd.vision import load_reader

        try:
            reader = load_reader(config.vision)
        except ModelError as err:
            area.warn("plates", "models not loaded, snapshot without plate boxes", str(err),
                      "see `alprd diag models`")
    if reader is not None:
        sightings = reader.read(view)
        for s in sightings:
            d = s.detection
            p1, p2 = (int(d.x1) + x0, int(d.y1) + y0), (int(d.x2) + x0, int(d.y2) + y0)
            cv2.rectangle(canvas, p1, p2, (0, 255, 0), 2)
            cv2.putText(canvas, f"{s.text} {s.confidence:.2f}", (p1[0], max(12, p1[1] - 6)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2)
        if sightings:
            area.ok("plates", f"{len(sightings)} read: " + ", ".join(s.text for s in sightings))
        else:
            area.warn("plates", "0 read in the snapshot", "no plate in view, or aim, focus or ROI is off",
                      "park a car at the usual distance, re-run, and look at the snapshot")
    out_dir = options.out_dir or config.store.state_dir / "diag"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / f"camera-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.jpg"
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        area.fail("snapshot", "not written", "JPEG encoding failed", "report this frame size to support")
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SNAPSHOT_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(buf.tobytes())
    area.ok("snapshot", f"{path} (copy off with scp to check aim and focus)")
