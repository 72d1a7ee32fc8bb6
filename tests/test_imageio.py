"""Still images: sizes read from headers, oversized or broken files refused by name, capture goes on."""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from alprd.capture import ImageFolderSource
from alprd.cli import main
from alprd.config import CameraConfig
from alprd.imageio import MAX_PIXELS, ImageError, decode_image, image_size, read_image

IMAGE = np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; its pixel data is a few bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def encoded(ext: str, image: np.ndarray = IMAGE, params: tuple[int, ...] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext, params, channels", [
    (".jpg", (), 3),
    (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), 3),
    (".png", (), 3),
    (".bmp", (), 3),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), 3),  # VP8 (lossy)
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), 3),  # VP8L (lossless)
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), 4),  # VP8X (alpha)
])
def test_header_sizes_of_every_format_the_folder_source_reads(ext, params, channels):
    image = IMAGE if channels == 3 else cv2.cvtColor(IMAGE, cv2.COLOR_BGR2BGRA)
    data = encoded(ext, image, params)
    assert image_size(data) == (53, 37)
    assert decode_image(data).shape == (37, 53, 3)


@pytest.mark.parametrize("width, height", [(65535, 65535), (20000, 20000), (MAX_PIXELS + 1, 1)])
def test_an_oversized_header_is_refused_before_decoding(width, height):
    with pytest.raises(ImageError, match=f"{width} x {height} pixels is more than the {MAX_PIXELS:,}"):
        decode_image(png_header(width, height))


@pytest.mark.parametrize("data, problem", [
    (b"not an image", "not a JPEG, PNG, BMP or WebP"),
    (b"II*\x00" + bytes(100), "not a JPEG, PNG, BMP or WebP"),  # TIFF: OpenCV reads it, we do not
    (png_header(0, 10), "impossible size of 0 x 10"),
    (png_header(40, 30)[:-30], "damaged or cut short"),
    (encoded(".jpg")[:200], "damaged or cut short"),
])
def test_broken_images_are_image_errors(data, problem):
    with pytest.raises(ImageError, match=problem):
        decode_image(data)


def test_read_image_names_the_file(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="cannot be read"):
        read_image(tmp_path / "missing.jpg")
    odd = tmp_path / os.fsdecode(b"plate-\xff.jpg")  # not UTF-8: cv2.imread crashed on it
    odd.write_bytes(encoded(".jpg"))
    assert read_image(odd).shape == (37, 53, 3)


def test_the_folder_source_skips_an_oversized_image_with_a_warning_and_goes_on(tmp_path):
    (tmp_path / "a_huge.png").write_bytes(png_header(65535, 65535))
    (tmp_path / "b_car.png").write_bytes(encoded(".png"))
    source = ImageFolderSource(CameraConfig(source="images", path=str(tmp_path), realtime=False))
    source.open()
    with capture_logs() as logs:
        frame = source.read()
    assert frame is not None and np.array_equal(frame.image, IMAGE)
    assert source.skipped == [tmp_path / "a_huge.png"]
    [warning] = [e for e in logs if e["event"] == "image_skipped"]
    assert "a_huge.png: 65535 x 65535 pixels is more than" in warning["error"]
    assert source.read() is None


def test_alprd_read_explains_each_bad_file_and_reads_the_rest(tmp_path, capsys):
    huge, folder = tmp_path / "huge.png", tmp_path / "folder.jpg"
    huge.write_bytes(png_header(20000, 20000))
    folder.mkdir()
    good = tmp_path / "good.png"
    good.write_bytes(encoded(".png"))
    assert main(["read", str(huge), str(folder), str(good)]) == 1
    captured = capsys.readouterr()
    assert f"{huge}: 20000 x 20000 pixels is more than the {MAX_PIXELS:,} pixels allowed" in captured.err
    assert f"{folder}: is a folder, not an image; skipped" in captured.err
    assert "Traceback" not in captured.err and f"{good}: 0 plate(s)" in captured.out
