"""GPS figures on this machine: NMEA parsing rate, and time from replugging the receiver to a fix.

    .venv/bin/python scripts/bench_gps.py

The receiver is a pseudo-terminal behind a symlink (as udev's /dev/serial/by-id/
names are); the reader is the daemon's own ``SerialGps``.
"""

from __future__ import annotations

import os
import pty
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hardware_fakes import drive_log

from alprd.config import GpsConfig, LoggingConfig
from alprd.gps.nmea import LineAssembler, NmeaTracker
from alprd.gps.serial_reader import SerialGps
from alprd.log import setup_logging


def parse_rate(seconds_of_drive: int = 600) -> float:
    lines, _ = drive_log(seconds=seconds_of_drive)
    stream = ("\r\n".join(lines) + "\r\n").encode()
    t0 = time.perf_counter()
    a, t = LineAssembler(), NmeaTracker()
    for line in a.feed(stream):
        t.feed_line(line, 0.0)
    return len(lines) / (time.perf_counter() - t0)


def plug(link: Path) -> int:
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    link.unlink(missing_ok=True)
    link.symlink_to(name)
    return master


def replug_to_fix(unplugged_s: float) -> float:
    """Seconds from the receiver reappearing to the reader holding its new fix."""
    lines, truth = drive_log(seconds=2)
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "gps0"
        master = plug(link)
        reader = SerialGps(GpsConfig(mode="serial", port=str(link)))
        reader.start()
        try:
            while not reader.connected:
                time.sleep(0.01)
            os.close(master)
            while reader.connected:
                time.sleep(0.01)
            time.sleep(unplugged_s)
            t0 = time.perf_counter()
            master = plug(link)
            while not reader.connected:
                time.sleep(0.005)
            os.write(master, ("\r\n".join(lines) + "\r\n").encode())
            while reader.current() is None or abs(reader.current().lat - truth[-1][0]) > 1e-9:
                time.sleep(0.005)
            return time.perf_counter() - t0
        finally:
            reader.stop()
            os.close(master)


if __name__ == "__main__":
    setup_logging(LoggingConfig(level="error"))
    print(f"NMEA parsing: {parse_rate():,.0f} sentences/s (a receiver sends about 6-30 per second)")
    for away in (0.1, 2.0):
        print(f"receiver unplugged {away:g} s: fix back {replug_to_fix(away):.2f} s after replug "
              "(reopen back-off 0.5 s doubling, capped by gps.reopen_backoff_max_s)")
