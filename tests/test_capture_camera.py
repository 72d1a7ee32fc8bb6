"""Live camera sources: OpenCV capture, reconnect with back-off, ROI, Pi camera wiring.

The "camera" is a video file opened through the RTSP/FFmpeg path: reaching its
end is a stream going down, removing it is a camera that stays away.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import time
import types

import pytest
from conftest import make_config
from hardware_fakes import FakeReader, wait_for, write_video

from alprd.app import build_daemon
from alprd.capture import CaptureError, DeviceError, VideoFileSource, open_device, open_source
from alprd.capture.opencv_camera import OpenCVCamera, redact_url
from alprd.capture.picamera import PiCamera
from alprd.capture.reconnect import RateMeter, Reconnecting
from alprd.capture.roi import RoiCrop, clip_roi
from alprd.config import CameraConfig


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("cam") / "street.avi", frames=20)


def stream_cfg(path, **kw) -> CameraConfig:
    return CameraConfig(source="rtsp", path=str(path), reopen_backoff_max_s=0.2, **kw)


def test_opencv_camera_reads_frames_with_monotonic_time(video):
    cam = OpenCVCamera(stream_cfg(video))
    cam.open()
    frames = [cam.read() for _ in range(5)]
    cam.close()
    assert frames[0].image.shape == (240, 320, 3)
    assert cam.settings["width"] == 320 and cam.settings["backend"] == "FFMPEG"
    assert [f.index for f in frames] == list(range(5))
    assert all(b.t >= a.t for a, b in itertools.pairwise(frames))


def test_unreachable_stream_and_missing_usb_device_name_the_fix(tmp_path):
    with pytest.raises(DeviceError, match="cannot open stream") as err:
        OpenCVCamera(stream_cfg(tmp_path / "none.avi")).open()
    assert "rtsp_transport" in err.value.fix
    with pytest.raises(DeviceError, match="no camera at /dev/video97") as err:
        OpenCVCamera(CameraConfig(source="usb", path="/dev/video97")).open()
    assert "v4l2-ctl" in err.value.fix


def test_rtsp_password_never_shown():
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert OpenCVCamera(CameraConfig(source="rtsp", path="rtsp://u:pw@cam/x")).name == "rtsp://u:***@cam/x"


def test_stream_that_ends_is_reopened_and_frames_keep_counting(video):
    cam = open_source(stream_cfg(video))
    assert isinstance(cam, Reconnecting)
    cam.open()
    frames = [cam.read() for _ in range(45)]  # 20-frame file: two reopenings
    status = cam.status()
    cam.close()
    assert [f.index for f in frames] == list(range(45))
    assert all(b.t > a.t for a, b in itertools.pairwise(frames))
    assert status["opens"] == 3 and status["losses"] == 2 and status["state"] == "streaming"
    assert "no frame from" in status["last_error"]


def test_a_flapping_stream_is_backed_off(video):
    cam = Reconnecting(lambda: OpenCVCamera(stream_cfg(video)), "cam", backoff_max_s=0.4,
                       backoff_initial_s=0.05)
    cam.open()
    t0 = time.monotonic()
    for _ in range(20 * 5):  # five short runs of the 20-frame stream, each dying at once
        cam.read()
    elapsed = time.monotonic() - t0
    cam.close()
    assert cam.opens == 5
    assert elapsed >= 0.05 + 0.1 + 0.2 + 0.4  # waits doubled between the reopenings


def test_camera_that_stays_away_is_retried_and_reported(tmp_path, video):
    path = tmp_path / "cam.avi"
    path.write_bytes(video.read_bytes())
    cam = open_source(stream_cfg(path))
    cam.open()
    got: list = []
    reader_thread = threading.Thread(target=lambda: got.extend(cam.read() for _ in range(30)), daemon=True)
    path.rename(tmp_path / "unplugged.avi")  # the file is gone once the first 20 frames are read
    reader_thread.start()
    try:
        # the first reopening comes after the initial back-off; wait for it, however busy the machine
        wait_for(lambda: "cannot open stream" in (cam.status()["last_error"] or ""), 10, "a failed reopening")
        status = cam.status()
        assert status["state"] == "reconnecting" and status["lost_since"]
        (tmp_path / "unplugged.avi").rename(path)  # plugged back in
        reader_thread.join(10)
        assert len(got) == 30 and cam.status()["state"] == "streaming" and cam.status()["lost_since"] is None
    finally:  # a failed assertion must not leave the reader retrying forever (pytest would never exit)
        cam.interrupt()
        reader_thread.join(10)
        cam.close()


def test_interrupt_ends_a_waiting_read(tmp_path):
    cam = Reconnecting(lambda: OpenCVCamera(stream_cfg(tmp_path / "none.avi")), "cam", backoff_max_s=30)
    cam.open()
    t0 = time.monotonic()
    timer = threading.Timer(0.3, cam.interrupt)
    timer.start()
    assert cam.read() is None
    assert time.monotonic() - t0 < 2


def test_daemon_keeps_running_through_camera_loss_and_stops_during_backoff(tmp_path, video):
    path = tmp_path / "cam.avi"
    path.write_bytes(video.read_bytes())
    cfg = make_config(tmp_path, camera={"source": "rtsp", "path": str(path), "reopen_backoff_max_s": 30})
    daemon = build_daemon(cfg, reader=FakeReader())

    async def main():
        task = asyncio.create_task(daemon.run(install_signals=False))
        await asyncio.to_thread(wait_for, lambda: daemon.status()["camera"]["losses"] >= 1, 10, "first loss")
        path.unlink()  # now the camera stays away; back-off grows towards 30 s
        await asyncio.to_thread(wait_for, lambda: daemon.status()["camera"]["state"] == "reconnecting", 10, "lost")
        await asyncio.sleep(1.5)
        assert not task.done()
        t0 = time.monotonic()
        daemon.request_stop()
        await task
        return time.monotonic() - t0

    stop_s = asyncio.run(main())
    assert stop_s < 3
    # a live camera may drop a frame when the machine is busy (the newest frame wins); none is lost unaccounted
    stats = daemon.stats
    assert stats.frames_captured >= 20 and stats.frames_processed + stats.frames_dropped == stats.frames_captured
    assert stats.frames_processed >= 1 and daemon.store.count_reads() >= 1  # how many: up to the machine's load
    daemon.store.close()


def test_rate_meter():
    m = RateMeter()
    for i in range(11):
        m.tick(100 + i * 0.1)
    assert m.rate(101.0) == pytest.approx(10.0)
    assert m.rate(104.0) == 0.0  # frames stopped


# -- region of interest ---------------------------------------------------------

def test_clip_roi():
    assert clip_roi((0, 100, 320, 100), 320, 240) == (0, 100, 320, 100)
    assert clip_roi((300, 200, 100, 100), 320, 240) == (300, 200, 20, 40)
    assert clip_roi((400, 0, 50, 50), 320, 240) is None


def test_roi_crops_every_frame_and_rejects_a_roi_off_the_frame(video):
    src = open_source(CameraConfig(source="video", path=str(video), realtime=False, roi=(10, 100, 200, 80)))
    assert isinstance(src, RoiCrop)
    src.open()
    assert src.read().image.shape == (80, 200, 3)
    src.close()
    off = RoiCrop(VideoFileSource(CameraConfig(source="video", path=str(video), realtime=False)), (400, 0, 50, 50))
    off.open()
    with pytest.raises(CaptureError, match="fix camera.roi"):
        off.read()
    off.close()


# -- Raspberry Pi camera (picamera2 cannot run here: its module is faked) -------------------

def test_picamera2_is_imported_only_when_opened_and_its_absence_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as if not installed
    cam = open_device(CameraConfig(source="picamera"))
    assert isinstance(cam, PiCamera)
    with pytest.raises(DeviceError, match="picamera2 is not installed") as err:
        cam.open()
    assert "python3-picamera2" in err.value.fix


def test_picamera_gets_size_rate_and_shutter(monkeypatch):
    import numpy as np

    calls = {}

    class FakePicamera2:
        def __init__(self, index):
            calls["index"] = index

        def create_video_configuration(self, main, controls, buffer_count):
            calls.update(main=main, controls=controls)
            return "config"

        def configure(self, config):
            calls["configured"] = config

        def start(self):
            calls["started"] = True

        def capture_array(self, stream):
            return np.zeros((720, 1280, 3), np.uint8)

        def stop(self):
            calls["stopped"] = True

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    cam = PiCamera(CameraConfig(source="picamera", width=1280, height=720, fps=25, exposure_us=1000))
    cam.open()
    frame = cam.read()
    cam.close()
    assert calls["main"] == {"size": (1280, 720), "format": "RGB888"}
    assert calls["controls"] == {"FrameDurationLimits": (40000, 40000), "AeEnable": False, "ExposureTime": 1000}
    assert frame.image.shape == (720, 1280, 3) and calls["stopped"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may open any device node")
def test_usb_permission_denied_names_the_video_group(tmp_path):
    node = tmp_path / "video0"
    node.write_bytes(b"")
    node.chmod(0)
    with pytest.raises(DeviceError, match="permission denied") as err:
        OpenCVCamera(CameraConfig(source="usb", path=str(node))).open()
    assert "usermod -aG video" in err.value.fix
