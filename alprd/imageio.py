"""Still images read safely: the size in the header is checked before any pixel is decoded.

A PNG of a few hundred bytes may claim 65535 x 65535 pixels; OpenCV then
raises ``cv2.error`` (which once ended capture) or, below its own 1-gigapixel
limit, allocates gigabytes. So the width and height are read from the header
(PNG IHDR, JPEG SOF, BMP, WebP) and anything larger than ``MAX_PIXELS``, or
in another format, is refused by name. The file is read by Python, not by
``cv2.imread``, which crashes on a file name that is not UTF-8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np

MAX_PIXELS = 8192 * 8192  # the largest frame camera.width and camera.height allow
MAX_FILE_BYTES = 256 * 2**20  # well above a MAX_PIXELS JPEG or PNG
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # C4 DHT, C8 JPG, CC DAC are no frames
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: markers without a segment


class ImageError(ValueError):
    """An image that cannot be used; the message names the problem and the fix."""


def _u(data: bytes, start: int, size: int, order: Literal["big", "little"] = "big") -> int:
    return int.from_bytes(data[start:start + size], order)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_NO_LENGTH:
            i += 2
        elif marker in _JPEG_SOF:
            return (_u(data, i + 7, 2), _u(data, i + 5, 2)) if i + 9 <= len(data) else None
        else:
            i += 2 + _u(data, i + 2, 2)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return _u(data, 26, 2, "little") & 0x3FFF, _u(data, 28, 2, "little") & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = _u(data, 21, 4, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return _u(data, 24, 3, "little") + 1, _u(data, 27, 3, "little") + 1
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG, PNG, BMP or WebP; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return _u(data, 16, 4), _u(data, 20, 4)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_size(data)
    if data[:2] == b"BM" and len(data) >= 26:
        if _u(data, 14, 4, "little") == 12:  # OS/2 header: 16-bit sizes
            return _u(data, 18, 2, "little"), _u(data, 20, 2, "little")
        height = int.from_bytes(data[22:26], "little", signed=True)  # negative: stored top-down
        return int.from_bytes(data[18:22], "little", signed=True), abs(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image as BGR pixels; ImageError (never cv2.error) if it is not a usable image."""
    size = image_size(data)
    if size is None:
        raise ImageError("not a JPEG, PNG, BMP or WebP image (or its header is cut short)")
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"its header gives an impossible size of {width} x {height} pixels")
    if width * height > max_pixels:
        raise ImageError(f"{width} x {height} pixels is more than the {max_pixels:,} pixels allowed "
                         "(scale it down first)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise ImageError(f"cannot be decoded ({err.err or 'OpenCV error'})") from None
    if image is None:
        raise ImageError("damaged or cut short: cannot be decoded")
    return image


def read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image file as BGR pixels; ImageError naming the file and the problem otherwise."""
    try:
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB, too large for an image")
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        return decode_image(data, max_pixels)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from None
