"""The status file, sd_notify and ``alprd status`` against a running daemon."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_config
from hardware_fakes import FakeReader, wait_for

from alprd.app import build_daemon
from alprd.capture import SyntheticSource
from alprd.cli import main
from alprd.cli.hardware import status_header, status_lines
from alprd.daemon.status import notify, pipeline_stalled, watchdog_interval_s, write_atomically
from alprd.records import iso


def small_config(tmp_path, frames=60, **sections):
    """A short synthetic run; model paths point nowhere (the FakeReader reads), so status says so."""
    return make_config(tmp_path, camera={"frames": frames, "fps": 30, "width": 320, "height": 240},
                       status={"interval_s": 0.5}, vision={"detector_model": str(tmp_path / "det.onnx"),
                                                           "ocr_model": str(tmp_path / "ocr.onnx")}, **sections)


def run_daemon(cfg, during=None):
    daemon = build_daemon(cfg, source=SyntheticSource(cfg.camera), reader=FakeReader())

    async def go():
        task = asyncio.create_task(daemon.run(install_signals=False))
        if during:
            await asyncio.to_thread(during, daemon)
        await task

    asyncio.run(go())
    daemon.store.close()
    return daemon


def test_status_command_reads_the_running_daemon(tmp_path, capsys):
    cfg = small_config(tmp_path, gps={"mode": "fixed", "latitude": 39.7392, "longitude": -104.9903})
    path = tmp_path / "status.json"
    seen = {}

    def check_while_running(daemon):
        wait_for(lambda: path.exists() and json.loads(path.read_text())["pipeline"]["reads"] >= 0
                 and daemon.stats.frames_processed > 10, what="status written")
        wait_for(lambda: json.loads(path.read_text())["pipeline"]["frames_processed"] > 10, what="fresh status")
        seen["rc"] = main(["status", "--file", str(path)])
        seen["out"] = capsys.readouterr().out

    run_daemon(cfg, check_while_running)
    out = seen["out"]
    assert seen["rc"] == 1  # models missing and no uplink here: problems reported, not hidden
    assert ": running, pid" in out
    assert "fixed site 39.739200, -104.990300" in out
    assert "MB free of" in out and "det.onnx missing" in out
    assert "uplink disabled" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o640

    final = json.loads(path.read_text())
    assert final["state"] == "stopped" and final["pipeline"]["reads"] == 1
    assert "ABC123" not in path.read_text()  # health figures only, never plates
    assert main(["status", "--file", str(path)]) == 3
    assert "STOPPED" in capsys.readouterr().out


def snapshot(**over):
    now = datetime.now(UTC)
    snap = {
        "written_at": iso(now), "started_at": iso(now - timedelta(hours=3)), "state": "running",
        "interval_s": 5, "pid": 42, "version": "0.1.0", "device_id": "car12", "camera_id": "cam0",
        "pipeline": {"fps": 14.8, "reads": 340, "frames_processed": 9000, "frames_dropped": 3,
                     "inference_ms_avg": 41.0, "last_read_at": iso(now)},
        "camera": {"source": "cam0 (usb)", "state": "streaming", "fps": 14.9, "losses": 0,
                   "last_frame_at": iso(now), "lost_since": None, "last_error": None},
        "gps": {"mode": "serial", "port": "/dev/ttyACM0", "connected": True, "satellites": 9,
                "fix": {"state": "current", "age_s": 0.3, "lat": 48.1, "lon": 11.5, "satellites": 9,
                        "hdop": 0.9, "speed_kmh": 40.0}},
        "uplink": {"connected": True, "broker": "mqtt.pd.local:8883", "last_upload_at": iso(now),
                   "transfer": "ok"},
        "hotlist": {"severity": "ok", "message": "hotlist version 2026-11-28.1, 2.0 h old"},
        "storage": {"disk": {"free_mb": 12000, "total_mb": 29000, "level": "OK"},
                    "backlog": {"reads": 12, "oldest_age_h": 0.1}},
        "models": {"detector": {"file": "/m/plate_detector.onnx", "present": True, "sha256": "1a2b3c4d5e6f",
                                "modified": "2026-11-27"}},
    }
    snap.update(over)
    return snap


def test_healthy_unit_is_all_ok():
    snap = snapshot()
    header, running = status_header(snap, datetime.now(UTC))
    assert running and "car12: running" in header and "up 3h00m" in header
    lines = status_lines(snap)
    assert [what for what, _, _ in lines] == ["camera", "reads", "gps", "broker", "backlog", "hotlist",
                                              "disk", "models"]
    assert all(level == "OK" for _, level, _ in lines), lines
    assert len(lines) + 1 <= 24  # one screen


def test_problems_are_flagged():
    snap = snapshot(
        camera={"source": "cam0 (usb)", "state": "reconnecting", "fps": 0, "losses": 3, "last_frame_at": None,
                "lost_since": "2026-11-28T04:00:00.000000Z", "last_error": "no camera at /dev/video0"},
        uplink={"connected": False, "broker": "b:8883", "error": "connection refused", "transfer": "critical"},
    )
    snap["gps"]["fix"]["state"] = "stale"
    levels = {what: (level, text) for what, level, text in status_lines(snap)}
    assert levels["camera"][0] == "FAIL" and "LOST since 2026-11-28 04:00:00Z" in levels["camera"][1]
    assert levels["gps"][0] == "WARN" and "stale" in levels["gps"][1]
    assert levels["broker"][0] == "WARN" and "connection refused" in levels["broker"][1]
    assert levels["backlog"][0] == "FAIL"


def test_old_status_file_means_not_responding(tmp_path, capsys):
    snap = snapshot(written_at=iso(datetime.now(UTC) - timedelta(minutes=2)))
    path = tmp_path / "status.json"
    write_atomically(path, snap)
    assert main(["status", "--file", str(path)]) == 3
    assert "NOT RESPONDING" in capsys.readouterr().out
    assert main(["status", "--file", str(tmp_path / "none.json")]) == 3
    assert "daemon is not running" in capsys.readouterr().err


def test_a_stopped_daemon_is_reported_stopped_not_ok(tmp_path, capsys):
    path = tmp_path / "status.json"
    write_atomically(path, snapshot(state="stopped"))  # its last figures were all healthy
    assert main(["status", "--file", str(path)]) == 3
    out = capsys.readouterr().out
    assert ": STOPPED" in out and "last figures, written" in out
    assert " OK " not in out
    assert "camera   -     cam0 (usb) 14.9 fps" in out


def test_status_says_when_it_cannot_read_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "alprd.toml"
    conf.write_text("[camera]\nsource = 'webcam'\n")
    assert main(["--config", str(conf), "status"]) == 3
    err = capsys.readouterr().err
    assert "cannot read the configuration" in err and "camera.source" in err
    assert "trying state/status.json instead" in err and "no status file at state/status.json" in err


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    for i in range(5):
        write_atomically(tmp_path / "status.json", {"n": i})
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert json.loads((tmp_path / "status.json").read_text()) == {"n": 4}


# -- systemd notification ---------------------------------------------------------

class NotifyListener:
    """Plays systemd's side of NOTIFY_SOCKET: collects datagrams in a thread."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    listener = NotifyListener(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield listener
    listener.close()


def test_daemon_tells_systemd_ready_watchdog_and_stopping(tmp_path, systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # WatchdogSec=0.2s: ping every 0.1 s
    run_daemon(small_config(tmp_path, frames=45))
    wait_for(lambda: systemd.messages and systemd.messages[-1].startswith("STOPPING"), what="STOPPING")
    messages = systemd.messages
    assert messages[0].startswith("READY=1\nSTATUS=")
    assert sum("WATCHDOG=1" in m for m in messages) >= 3
    assert messages[-1] == "STOPPING=1\nSTATUS=stopping"
    assert any("reads" in m and "fps" in m for m in messages)


def test_watchdog_setting_and_stall_detection(monkeypatch):
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # not for us
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval_s({}) is None
    assert pipeline_stalled({"frames_captured": 10, "frames_processed": 8},
                            {"frames_captured": 40, "frames_processed": 8})
    assert not pipeline_stalled({"frames_captured": 10, "frames_processed": 8},
                                {"frames_captured": 40, "frames_processed": 30})
    assert not pipeline_stalled({"frames_captured": 10, "frames_processed": 10},  # camera lost: no frames
                                {"frames_captured": 10, "frames_processed": 10})


def test_notify_reaches_an_abstract_socket():
    name = f"alprd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"
    assert not notify("READY=1", {})
