"""The systemd unit passes `systemd-analyze verify` and matches what install.sh lays out."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alprd.config import load_config, service_problems

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "alprd.service"
INSTALL = ROOT / "scripts" / "install.sh"


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies_cleanly(tmp_path):
    # verify insists that ExecStart exists: point it at this checkout's alprd for the check.
    alprd = Path(sys.executable).parent / "alprd"
    unit = tmp_path / "alprd.service"
    unit.write_text(UNIT.read_text().replace("/opt/alprd/venv/bin/alprd", str(alprd)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys are only warnings: none allowed
    # systemd's own exposure score (0 = locked down, 10 = unprotected) stays at 2.0 or below.
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout[-2000:]


def test_unit_is_a_hardened_notify_service():
    s = settings(UNIT.read_text())
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"]
    assert int(s["WatchdogSec"][0]) >= 10
    assert s["User"] == ["alprd"] and set(s["SupplementaryGroups"][0].split()) == {"video", "dialout"}
    assert s["StateDirectory"] == ["alprd"] and s["UMask"] == ["0077"]
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""]


def test_install_script_matches_the_unit():
    script = INSTALL.read_text()
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    prefix = re.search(r"^PREFIX=(\S+)", script, re.MULTILINE).group(1)
    state = re.search(r"^STATE_DIR=(\S+)", script, re.MULTILINE).group(1)
    s = settings(UNIT.read_text())
    assert s["ExecStart"][0].startswith(f"{prefix}/venv/bin/alprd ")
    assert s["WorkingDirectory"] == [state] and state.endswith("/" + s["StateDirectory"][0])
    assert 'chmod 0600 "$CONF_DIR/alprd.toml"' in script and "chmod 0600 {} +" in script


def install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)


def test_install_writes_the_units_device_and_camera(tmp_path):
    result = install("--print-config", "--device-id", "car12", "--camera", "usb", "--camera-path", "/dev/video2")
    assert result.returncode == 0, result.stderr
    conf = tmp_path / "alprd.toml"
    conf.write_text(result.stdout)
    cfg = load_config(conf)
    assert (cfg.device.id, cfg.camera.source, cfg.camera.path) == ("car12", "usb", "/dev/video2")
    assert str(cfg.store.state_dir) == "/var/lib/alprd" and service_problems(cfg) == []


@pytest.mark.parametrize(("args", "named"), [
    ((), "--device-id"),
    (("--device-id", "car12"), "--camera"),
    (("--device-id", "alprd-dev", "--camera", "usb"), "placeholder"),
    (("--device-id", "car 12", "--camera", "usb"), "letters, digits"),
    (("--device-id", "car12", "--camera", "synthetic"), "fake plates"),
    (("--device-id", "car12", "--camera", "rtsp"), "--camera-path"),
])
def test_install_requires_the_device_id_and_a_real_camera(args, named):
    result = install("--print-config", *args)  # no terminal: nothing to ask, so it must be given
    assert result.returncode == 2 and named in result.stderr and result.stdout == ""
