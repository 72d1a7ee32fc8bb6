"""``diag gps``: listen to the receiver with the daemon's own reader and judge what comes.

Checks in the order a technician fixes them: the port opens, bytes arrive,
they are NMEA (else: baud rate), the receiver has a fix, and its precision.
"""

from __future__ import annotations

import time

from alprd.config import Config
from alprd.diag import Area, Check, DiagOptions
from alprd.gps.serial_reader import SerialGps

MAX_GARBAGE_SHARE = 0.1
POOR_HDOP = 5.0


def check(config: Config, options: DiagOptions) -> list[Check]:
    area = Area("gps")
    cfg = config.gps
    if cfg.mode == "none":
        area.warn("mode", "none: reads carry no position", "gps.mode = \"none\"",
                  "set gps.mode = \"serial\" (receiver) or \"fixed\" with latitude/longitude (pole site)")
        return area.checks
    if cfg.mode == "fixed":
        area.ok("position", f"fixed site {cfg.latitude:.6f}, {cfg.longitude:.6f}")
        return area.checks
    status = _listen(SerialGps(cfg), options.seconds)
    if status["opens"] == 0:
        area.fail("port", cfg.port, status["last_error"], status["hint"])
        return area.checks
    area.ok("port", f"{cfg.port} open at {cfg.baudrate} baud")
    seconds = f"{options.seconds:g} s"
    if status["bytes"] == 0:
        area.fail("data", f"0 bytes in {seconds}", "the receiver sends nothing",
                  "check its power LED and cable; on a modem with several ports try the other "
                  "/dev/ttyACM* or /dev/ttyUSB* (see /dev/serial/by-id/)")
        return area.checks
    total = status["sentences"] + status["garbage"]
    if status["sentences"] == 0:
        area.fail("nmea", f"{status['bytes']} bytes, no valid NMEA sentence", "no NMEA seen: wrong baud rate "
                  "or the receiver speaks a binary protocol (UBX, SiRF)",
                  f"check the baud rate: gps.baudrate is {cfg.baudrate}; try 4800, 9600, 38400 or "
                  "115200, or switch the receiver to NMEA output")
        return area.checks
    share = status["garbage"] / total if total else 0.0
    value = f"{status['sentences']} sentences, {status['garbage']} garbage ({share:.0%}) in {seconds}"
    if share > MAX_GARBAGE_SHARE:
        area.warn("nmea", value, "many corrupt lines: electrical noise, a loose cable or a marginal baud rate",
                  "re-seat the cable, keep it away from power leads, confirm gps.baudrate")
    else:
        area.ok("nmea", value)
    _report_fix(area, status, cfg.max_fix_age_s)
    return area.checks


def _listen(reader: SerialGps, seconds: float) -> dict:
    """Run the reader for ``seconds`` (less once a current fix is seen) and return its status."""
    reader.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            fix = reader.status()["fix"]
            if fix and fix["state"] == "current" and reader.status()["satellites"] is not None:
                break
            time.sleep(0.1)
    finally:
        reader.stop()
    return reader.status()


def _report_fix(area: Area, status: dict, max_age_s: float) -> None:
    fix = status["fix"]
    if fix is None or fix["state"] != "current":
        area.warn("fix", "no current fix" + (f" (last one {fix['age_s']} s old)" if fix else ""),
                  "the receiver has no satellite fix yet (indoors, antenna covered, cold start)",
                  "give the antenna open sky; a first fix after a cold start can take a few minutes")
        return
    sats = status["satellites"]
    hdop = status["hdop"]
    value = (f"{fix['lat']:.6f}, {fix['lon']:.6f}; {sats if sats is not None else '?'} satellites, "
             f"HDOP {hdop if hdop is not None else '?'}; stale after {max_age_s:g} s")
    if hdop is not None and hdop > POOR_HDOP:
        area.warn("fix", value, "poor precision (few satellites in view)",
                  "mount the antenna on the roof, clear of the light bar")
    else:
        area.ok("fix", value)
