"""The NMEA receiver on a serial port, read in a thread that survives unplugging.

The port is opened exclusively (a second reader would steal bytes). When the
receiver disappears the port is closed and reopened with growing back-off; the
last fix stays available but ages, so reads get it marked stale, never current.
"""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from typing import Any

import serial

from alprd.config import GpsConfig
from alprd.gps import Fix
from alprd.gps.nmea import LineAssembler, NmeaTracker
from alprd.log import get_logger
from alprd.records import utc_now

READ_TIMEOUT_S = 0.5
BACKOFF_INITIAL_S = 0.5


def open_port(cfg: GpsConfig) -> serial.Serial:
    """Open the receiver's port; raises ``serial.SerialException`` (see :func:`explain`)."""
    return serial.Serial(cfg.port, cfg.baudrate, timeout=READ_TIMEOUT_S, exclusive=True)


def explain(cfg: GpsConfig, err: BaseException) -> tuple[str, str]:
    """(likely cause, fix) for a serial error, worded for a field technician."""
    code = getattr(err, "errno", None)
    if code == errno.ENOENT:
        return (f"no device at {cfg.port}",
                ("check the receiver is plugged in; list ports with `ls -l /dev/serial/by-id/ "
                 "/dev/ttyACM* /dev/ttyUSB*` and set gps.port (prefer the /dev/serial/by-id/ name)"))
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied on {cfg.port}",
                ("add the service user to the dialout group: `sudo usermod -aG dialout alprd`, "
                 "then restart alprd"))
    if code in (errno.EAGAIN, errno.EBUSY) or "lock" in str(err).lower():
        return (f"{cfg.port} is in use by another program (the running daemon, gpsd, ModemManager)",
                "stop it first (`sudo systemctl stop alprd` or `sudo systemctl disable --now gpsd`)")
    return (f"{cfg.port} failed: {err}", "unplug and replug the receiver; check the cable")


class SerialGps:
    """Position provider for ``[gps] mode = "serial"``: ``current()`` is the latest fix."""

    def __init__(self, cfg: GpsConfig):
        self.cfg = cfg
        self.tracker = NmeaTracker()
        self.lines = LineAssembler()
        self.connected = False
        self.opens = 0
        self.bytes_read = 0
        self.last_error: str | None = None
        self.hint: str | None = None  # the fix for last_error
        self.disconnected_since: str | None = utc_now()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = get_logger("alprd.gps").bind(port=cfg.port)

    # -- what the daemon uses ------------------------------------------------
    def current(self) -> Fix | None:
        with self._lock:
            return self.tracker.fix

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            t = self.tracker
            last = t.last_sentence_at
            return {
                "mode": "serial", "port": self.cfg.port, "baudrate": self.cfg.baudrate,
                "connected": self.connected, "receiver_has_fix": t.has_fix,
                "fix": t.fix.describe(self.cfg.max_fix_age_s, now) if t.fix else None,
                "quality": t.quality, "satellites": t.satellites, "hdop": t.hdop,
                "sentences": t.counters.sentences, "garbage": t.counters.garbage + self.lines.dropped,
                "rejected": dict(t.counters.rejected),
                "bytes": self.bytes_read, "last_sentence_age_s": None if last is None else round(now - last, 1),
                "opens": self.opens, "last_error": self.last_error, "hint": self.hint,
                "disconnected_since": None if self.connected else self.disconnected_since,
            }

    async def run(self, stop: asyncio.Event) -> None:
        """Daemon service: read until the daemon stops."""
        self.start()
        try:
            await stop.wait()
        finally:
            await asyncio.to_thread(self.stop)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="alprd-gps", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(READ_TIMEOUT_S * 4)

    # -- the reading thread -----------------------------------------------------
    def _loop(self) -> None:
        delay = BACKOFF_INITIAL_S
        while not self._stop.is_set():
            try:
                port = open_port(self.cfg)
            except (serial.SerialException, OSError, ValueError) as err:
                self._lost(err)
                self._stop.wait(delay)
                delay = min(delay * 2, self.cfg.reopen_backoff_max_s)
                continue
            delay = BACKOFF_INITIAL_S
            with self._lock:
                self.connected, self.opens = True, self.opens + 1
            self.log.info("gps_port_open", opens=self.opens)
            try:
                with port:
                    self._read(port)
            except (serial.SerialException, OSError) as err:
                self._lost(err, (f"receiver disconnected from {self.cfg.port} ({err})",
                                 "check the USB cable and the receiver's power; the port is reopened by itself"))

    def _read(self, port: serial.Serial) -> None:
        while not self._stop.is_set():
            data = port.read(max(1, port.in_waiting))
            if not data:
                continue
            now = time.monotonic()
            with self._lock:
                self.bytes_read += len(data)
                for line in self.lines.feed(data):
                    self.tracker.feed_line(line, now)

    def _lost(self, err: BaseException, cause_fix: tuple[str, str] | None = None) -> None:
        cause, fix = cause_fix or explain(self.cfg, err)
        with self._lock:
            if self.connected:
                self.disconnected_since = utc_now()
                self.lines.reset()
            self.connected = False
            changed = self.last_error != cause
            self.last_error, self.hint = cause, fix
        if changed:  # log each new problem once, not every back-off round
            self.log.warning("gps_port_lost", cause=cause, fix=fix)
