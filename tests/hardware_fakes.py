"""Fake devices for the hardware tests: a pseudo-terminal GPS, a video-file camera, a fake reader.

Only the hardware is fake; the code under test (pyserial reader, OpenCV capture,
daemon, diagnostics) is the real one.
"""

from __future__ import annotations

import math
import os
import pty
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

import cv2
import numpy as np

from alprd.vision.base import Detection
from alprd.vision.reader import Sighting


def nmea(body: str) -> str:
    """A sentence with its checksum: ``nmea("GPRMC,...")`` -> ``$GPRMC,...*hh``."""
    checksum = reduce(lambda a, c: a ^ ord(c), body, 0)
    return f"${body}*{checksum:02X}"


RMC = nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W")
GGA = nmea("GPGGA,123520,4807.040,N,01131.002,E,1,08,0.9,545.4,M,46.9,M,,")
VTG = nmea("GPVTG,084.4,T,034.4,M,022.4,N,041.5,K")
RMC_NO_FIX = nmea("GPRMC,123521,V,,,,,,,230394,,")
GGA_NO_FIX = nmea("GPGGA,123521,,,,,0,00,99.9,,M,,M,,")
GSV = nmea("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00")


def _ddmm(value: float, width: int) -> str:
    deg = int(abs(value))
    return f"{deg:0{width}d}{(abs(value) - deg) * 60:08.5f}"


def drive_log(seconds: int = 20, lat: float = 39.7392, lon: float = -104.9903, speed_kmh: float = 54.0,
              heading_deg: float = 90.0) -> tuple[list[str], list[tuple[float, float]]]:
    """A 1 Hz stream shaped like a u-blox receiver's (GN talker, GSA/GSV/GLL/TXT between the fixes)
    for a car driving straight; returns the lines and the true position of each second.
    Synthetic, not a recording: it has exactly the structure a real receiver sends."""
    lines, truth = [nmea("GNTXT,01,01,02,u-blox AG - www.u-blox.com")], []
    t0 = datetime(2026, 11, 28, 4, 0, 0, tzinfo=UTC)
    step_m = speed_kmh / 3.6
    for i in range(seconds):
        t = t0 + timedelta(seconds=i)
        la = lat + (step_m * i * math.cos(math.radians(heading_deg))) / 111_320
        lo = lon + (step_m * i * math.sin(math.radians(heading_deg))) / (111_320 * math.cos(math.radians(lat)))
        ns, ew = ("N" if la >= 0 else "S"), ("E" if lo >= 0 else "W")
        hms, dmy = t.strftime("%H%M%S.00"), t.strftime("%d%m%y")
        pos = f"{_ddmm(la, 2)},{ns},{_ddmm(lo, 3)},{ew}"
        knots = speed_kmh / 1.852
        lines += [
            nmea(f"GNRMC,{hms},A,{pos},{knots:.3f},{heading_deg:.2f},{dmy},,,A,V"),
            nmea(f"GNVTG,{heading_deg:.2f},T,,M,{knots:.3f},N,{speed_kmh:.3f},K,A"),
            nmea(f"GNGGA,{hms},{pos},1,09,1.02,1609.3,M,-21.4,M,,"),
            nmea("GNGSA,A,3,05,13,15,18,20,23,24,,,,,,1.89,1.02,1.59,1"),
            nmea("GPGSV,3,1,11,05,42,254,41,13,35,060,38,15,78,155,44,18,24,305,35,1"),
            nmea(f"GNGLL,{pos},{hms},A,A"),
        ]
        truth.append((la, lo))
    return lines, truth


class PtyGps:
    """A GPS receiver on a pseudo-terminal, reachable through a stable symlink.

    ``unplug()`` closes the terminal (the reader sees an I/O error, like a USB
    receiver pulled out); ``plug()`` makes a new one behind the same path, as udev
    does for /dev/serial/by-id/ names.
    """

    def __init__(self, link: Path):
        self.link = link
        self.master: int | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = pty.openpty()
        name = os.ttyname(slave)
        os.close(slave)
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(name)
        self.master = master

    def unplug(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self.link.unlink()

    def write(self, *lines: str, raw: bytes = b"") -> None:
        assert self.master is not None
        os.write(self.master, "".join(f"{line}\r\n" for line in lines).encode() + raw)

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def write_video(path: Path, frames: int = 30, fps: float = 15.0, size: tuple[int, int] = (320, 240)) -> Path:
    """A small MJPG .avi with a moving bright box, readable by OpenCV's FFmpeg backend."""
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert out.isOpened(), "OpenCV cannot write MJPG video here"
    for i in range(frames):
        img = np.full((h, w, 3), 90, np.uint8)
        cv2.rectangle(img, (10 + 3 * i % (w - 60), 100), (60 + 3 * i % (w - 60), 130), (240, 240, 240), -1)
        cv2.putText(img, f"{i}", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
        out.write(img)
    out.release()
    return path


class FakeReader:
    """Stands in for the ONNX models: 'reads' plate ABC123 at a fixed box in every frame.

    Confidence grows with each frame, so the latest sighting is a pass's best.
    """

    def __init__(self, text: str = "ABC123", box: tuple[int, int, int, int] = (40, 100, 120, 130)):
        self.text, self.box = text, box
        self.frames = 0

    def read(self, image: np.ndarray) -> list[Sighting]:
        self.frames += 1
        x1, y1, x2, y2 = self.box
        det = Detection(x1, y1, x2, y2, 0.9)
        conf = min(0.99, 0.5 + 0.001 * self.frames)
        return [Sighting(self.text, conf, (conf,) * len(self.text), det, image[y1:y2, x1:x2])]
