"""`alprd demo` end to end: synthetic camera, the shipped ONNX models, real SQLite."""

import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from conftest import free_port

from alprd.cli import main
from alprd.store import Store


def test_demo_reads_plates_into_the_database(tmp_path, capsys):
    state = tmp_path / "demo"
    assert main(["demo", "--frames", "60", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "summary" in out and "frames: 60 captured" in out
    store = Store(state / "alprd.db")
    reads = store.query("select plate, confidence, crop_jpeg, uploaded_at from reads")
    assert reads, "the demo stored no read"
    assert all(r["crop_jpeg"] and r["uploaded_at"] is None for r in reads)  # waiting for a broker
    pictures = store.query("select length(jpeg) as n from read_context")  # the vehicle around each plate
    assert len(pictures) == len(reads) and all(1000 < p["n"] < 100_000 for p in pictures)
    shown = int(out.split("plates shown ")[1].split(",")[0])
    exact = int(out.split("read exactly ")[1].split(";")[0])
    assert shown == 3 and exact >= 2, out
    for r in reads:  # each read was printed as it happened
        assert r["plate"] in out
    # the demo hotlist lists every third car from the second on: its read alerts, and the screen's user exists
    (alert,) = store.query("select plate, category, case_number from alerts")
    assert f"HOTLIST HIT {alert['plate']}" in out and alert["case_number"] == "CFS-DEMO-01"
    assert store.query("select role from users where username = 'demo'") == [{"role": "operator"}]


def test_make_demo_serves_the_screen_until_ctrl_c(tmp_path):
    """`make demo` runs `alprd demo --frames 0`: it prints the screen's address and login, serves it, and
    Ctrl-C ends it with the summary."""
    port = free_port()
    conf = tmp_path / "demo.toml"
    conf.write_text(f"[screen]\nport = {port}\n")
    alprd = str(Path(sys.executable).with_name("alprd"))
    proc = subprocess.Popen([alprd, "-c", str(conf), "demo", "--frames", "0", "--state-dir", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert f"screen: http://127.0.0.1:{port}/ (user demo, password demo-screen-1)" in lines[1], lines
        form = urllib.parse.urlencode({"username": "demo", "password": "demo-screen-1"}).encode()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        page = opener.open(f"http://127.0.0.1:{port}/login", form, timeout=10).read().decode()
        assert 'name="csrf"' in page and "Log out" in page  # logged in: the screen's page
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "summary" in out and "Traceback" not in err, err
