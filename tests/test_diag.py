"""Field diagnostics against fake devices: a video-file camera, a pseudo-terminal GPS,
a real local Mosquitto broker, real SQLite files, and the real models when installed."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from conftest import make_config
from hardware_fakes import GGA, GGA_NO_FIX, RMC, RMC_NO_FIX, VTG, FakeReader, PtyGps, write_video

from alprd.cli import main
from alprd.config import DEFAULT_MODELS_DIR
from alprd.diag import DiagOptions, format_checks, run, worst
from alprd.records import Read, iso
from alprd.store import MIGRATIONS, Store, StoreError

FAST = DiagOptions(seconds=1.0, bench_frames=3, timeout_s=3.0)


def by_name(checks):
    return {c.name: c for c in checks}


def levels(checks):
    return {c.name: c.level for c in checks}


# -- camera -----------------------------------------------------------------------------

def test_camera_measures_fps_and_saves_a_snapshot_with_plates_drawn(tmp_path):
    video = write_video(tmp_path / "cam.avi", frames=60, fps=15)
    cfg = make_config(tmp_path, camera={"source": "video", "path": str(video), "roi": [0, 80, 320, 100]})
    out = tmp_path / "snaps"
    checks = run("camera", cfg, DiagOptions(seconds=1.0, out_dir=out, reader=FakeReader()))
    c = by_name(checks)
    assert worst(checks) == "PASS", format_checks(checks)
    assert "320x240" in c["open"].value
    fps = float(c["frame rate"].value.split()[0])
    assert 12 <= fps <= 18  # the file plays at its own 15 fps
    assert c["plates"].value == "1 read: ABC123"
    [snap] = out.glob("camera-*.jpg")
    assert oct(snap.stat().st_mode & 0o777) == "0o640"
    image = cv2.imread(str(snap))
    assert image.shape == (240, 320, 3)  # the full frame, not the ROI
    b, g, r = image[180, 100]  # bottom edge of the fake plate box (100 + ROI offset 80) is drawn green
    assert g > 180 and r < 100 and b < 100
    b, g, r = image[80, 200]  # the ROI outline is yellow
    assert g > 180 and r > 180 and b < 100


def test_camera_problems_name_cause_and_fix(tmp_path):
    cfg = make_config(tmp_path, camera={"source": "usb", "path": "/dev/video97"})
    [c] = run("camera", cfg, FAST)
    assert (c.level, c.name) == ("FAIL", "open")
    assert "no camera at /dev/video97" in c.cause and "camera.path" in c.fix

    dark = tmp_path / "dark.avi"
    writer = cv2.VideoWriter(str(dark), cv2.VideoWriter_fourcc(*"MJPG"), 15, (160, 120))
    for _ in range(20):
        writer.write(np.full((120, 160, 3), 5, np.uint8))
    writer.release()
    cfg = make_config(tmp_path, camera={"source": "video", "path": str(dark), "realtime": False})
    c = by_name(run("camera", cfg, DiagOptions(seconds=0.5, out_dir=tmp_path, reader=FakeReader())))
    assert c["brightness"].level == "WARN" and "dark" in c["brightness"].cause
    assert c["focus"].level == "WARN"  # a flat image has no edges at all


# -- gps ---------------------------------------------------------------------------------

class Talker:
    """Writes lines to a pseudo-terminal GPS every 50 ms, like a receiver at 20 Hz."""

    def __init__(self, gps: PtyGps, *lines: str, raw: bytes = b""):
        self.gps, self.lines, self.raw = gps, lines, raw
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._talk, daemon=True)

    def _talk(self) -> None:
        while not self._stop.wait(0.05):
            self.gps.write(*self.lines, raw=self.raw)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def receiver(tmp_path):
    gps = PtyGps(tmp_path / "gps0")
    yield gps
    gps.close()


def gps_config(tmp_path, receiver, **extra):
    return make_config(tmp_path, gps={"mode": "serial", "port": str(receiver.link), **extra})


def test_gps_with_a_fix_passes(tmp_path, receiver):
    with Talker(receiver, RMC, GGA, VTG):
        checks = run("gps", gps_config(tmp_path, receiver), FAST)
    c = by_name(checks)
    assert worst(checks) == "PASS", format_checks(checks)
    assert "48.11" in c["fix"].value and "8 satellites" in c["fix"].value and "HDOP 0.9" in c["fix"].value


def test_gps_wrong_baud_rate_is_named(tmp_path, receiver):
    noise = bytes(range(128, 256)) + b"\r\n"  # what a 9600-baud receiver looks like read at 38400
    with Talker(receiver, raw=noise):
        c = by_name(run("gps", gps_config(tmp_path, receiver), FAST))
    assert c["nmea"].level == "FAIL" and "no NMEA seen" in c["nmea"].cause
    assert "baud rate" in c["nmea"].fix


def test_gps_silent_receiver_and_missing_port(tmp_path, receiver):
    c = by_name(run("gps", gps_config(tmp_path, receiver), FAST))
    assert c["data"].level == "FAIL" and c["data"].value.startswith("0 bytes")
    cfg = make_config(tmp_path, gps={"mode": "serial", "port": str(tmp_path / "ttyACM9")})
    [port] = run("gps", cfg, FAST)
    assert port.level == "FAIL" and "no device" in port.cause and "/dev/serial/by-id" in port.fix


def test_gps_without_satellite_fix_warns(tmp_path, receiver):
    with Talker(receiver, RMC_NO_FIX, GGA_NO_FIX):
        c = by_name(run("gps", gps_config(tmp_path, receiver), FAST))
    assert c["nmea"].level == "PASS" and c["fix"].level == "WARN" and "open sky" in c["fix"].fix


def test_gps_fixed_site_and_none(tmp_path):
    cfg = make_config(tmp_path, gps={"mode": "fixed", "latitude": 39.7, "longitude": -104.9})
    assert [c.level for c in run("gps", cfg, FAST)] == ["PASS"]
    assert [c.level for c in run("gps", make_config(tmp_path), FAST)] == ["WARN"]


# -- mqtt -----------------------------------------------------------------------------------

def mqtt_config(tmp_path, port):
    return make_config(tmp_path, uplink={"enabled": True, "host": "127.0.0.1", "port": port},
                       device={"id": "car12"})


def test_mqtt_round_trip_against_a_real_broker(tmp_path, broker):
    checks = run("mqtt", mqtt_config(tmp_path, broker.port), FAST)
    assert levels(checks) == {"connect": "PASS", "publish": "PASS", "round trip": "PASS"}, format_checks(checks)
    assert "acknowledged in" in by_name(checks)["publish"].value


def test_mqtt_broker_down_fails_with_the_cause(tmp_path, broker):
    broker.stop()
    [c] = run("mqtt", mqtt_config(tmp_path, broker.port), FAST)
    assert (c.name, c.level) == ("connect", "FAIL") and "connection refused" in c.cause


def test_mqtt_disabled_warns(tmp_path):
    [c] = run("mqtt", make_config(tmp_path), FAST)
    assert c.level == "WARN" and "uplink.enabled" in c.cause


# -- models -------------------------------------------------------------------------------

def test_models_missing_fail(tmp_path):
    cfg = make_config(tmp_path, vision={"detector_model": str(tmp_path / "d.onnx"),
                                        "verifier_model": str(tmp_path / "v.onnx"),
                                        "ocr_model": str(tmp_path / "o.onnx")})
    checks = run("models", cfg, FAST)
    assert levels(checks) == {"detector": "FAIL", "verifier": "FAIL", "ocr": "FAIL"}
    assert "vision.detector_model" in by_name(checks)["detector"].fix
    assert "vision.verifier_model" in by_name(checks)["verifier"].fix


def test_models_corrupt_file_fails_to_load(tmp_path):
    for name in ("d.onnx", "o.onnx"):
        (tmp_path / name).write_bytes(b"not a model")
    cfg = make_config(tmp_path, vision={"detector_model": str(tmp_path / "d.onnx"),
                                        "ocr_model": str(tmp_path / "o.onnx")})
    assert by_name(run("models", cfg, FAST))["load"].level == "FAIL"


@pytest.mark.skipif(not all((DEFAULT_MODELS_DIR / n).is_file() for n in ("plate_detector.onnx", "plate_ocr.onnx")),
                    reason="the trained models are not installed in models/")
def test_models_benchmark_on_this_device(tmp_path):
    cfg = make_config(tmp_path, camera={"width": 960, "height": 540, "fps": 1})
    checks = run("models", cfg, FAST)
    c = by_name(checks)
    assert c["detector"].level == c["verifier"].level == c["ocr"].level == "PASS"
    assert c["speed"].level == "PASS" and "ms/frame median" in c["speed"].value  # 1 fps is within reach
    assert c["accuracy"].value.startswith("read ")


# -- storage -------------------------------------------------------------------------------

def test_storage_checks_space_speed_database_and_backlog(tmp_path):
    cfg = make_config(tmp_path, status={"disk_warn_mb": 0, "disk_fail_mb": 0})
    c = by_name(run("storage", cfg, FAST))
    assert c["state dir"].level == c["disk"].level == c["write"].level == "PASS"
    assert c["database"].level == "WARN" and "not created yet" in c["database"].value

    store = Store(cfg.store.path)
    old = iso(datetime.now(UTC) - timedelta(days=27))
    store.insert_read(Read("ABC123", 0.9, (0.9,) * 6, "cam0", "dev", ts=old))
    store.close()
    os.chmod(cfg.store.path, 0o644)
    c = by_name(run("storage", cfg, FAST))
    assert c["database"].level == "PASS" and "schema" in c["database"].value
    assert c["permissions"].level == "WARN" and "chmod 600" in c["permissions"].fix
    assert c["backlog"].level == "WARN" and "1 reads waiting, oldest 27.0 days" == c["backlog"].value


def test_storage_failures(tmp_path):
    [c] = run("storage", make_config(tmp_path / "absent"), FAST)
    assert c.level == "FAIL" and "install.sh" in c.fix
    cfg = make_config(tmp_path, status={"disk_warn_mb": 0, "disk_fail_mb": 10**9})
    cfg.store.path.write_bytes(b"garbage, not sqlite" * 100)
    c = by_name(run("storage", cfg, FAST))
    assert c["disk"].level == "FAIL" and c["database"].level == "FAIL"


def test_storage_reads_through_a_read_only_store_that_never_migrates(tmp_path):
    cfg = make_config(tmp_path, status={"disk_warn_mb": 0, "disk_fail_mb": 0})
    Store(cfg.store.path).close()
    with sqlite3.connect(cfg.store.path) as conn:  # a database from an older alprd
        conn.execute("delete from schema_migrations where migration = ?", [MIGRATIONS[-1][0]])
    before = cfg.store.path.read_bytes()
    store = Store(cfg.store.path, readonly=True)
    assert (store.quick_check(), store.schema_version, store.backlog()) == ("ok", len(MIGRATIONS) - 1, (0, None))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.insert_read(Read("ABC123", 0.9, (0.9,) * 6, "cam0", "dev"))
    store.close()
    c = by_name(run("storage", cfg, FAST))
    assert c["database"].level == "PASS" and f"schema {len(MIGRATIONS) - 1}/{len(MIGRATIONS)}" in c["database"].value
    assert cfg.store.path.read_bytes() == before
    with pytest.raises(StoreError):
        Store(tmp_path / "none.db", readonly=True)
    assert not (tmp_path / "none.db").exists()


# -- the command -----------------------------------------------------------------------------

def test_diag_command_exit_code_and_json(tmp_path, capsys):
    conf = tmp_path / "alprd.toml"
    conf.write_text(f'[store]\nstate_dir = "{tmp_path}"\n[camera]\nsource = "usb"\npath = "/dev/video97"\n')
    assert main(["-c", str(conf), "diag", "camera"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  camera  open" in out and "cause: no camera at /dev/video97" in out and "fix:" in out
    assert main(["-c", str(conf), "diag", "gps", "--json"]) == 0  # gps.mode none: a warning only
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["level"] == "WARN"

