"""Health for technicians and for systemd: a JSON status file and sd_notify.

The daemon rewrites ``<state_dir>/status.json`` every ``status.interval_s``
(write to a temporary file, then rename: a reader never sees half a file);
``alprd status`` reads it, so a technician needs no access to the database.
The file holds health figures only, never plates or positions of reads.

Under ``Type=notify`` systemd gets ``READY=1`` once the pipeline runs, a
``STATUS=`` line, and ``WATCHDOG=1`` pings while the pipeline makes progress;
a hung pipeline stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alprd import __version__
from alprd.config import Config, StatusConfig
from alprd.log import get_logger
from alprd.records import parse_iso, utc_now
from alprd.store import Store

if TYPE_CHECKING:
    from alprd.daemon import Daemon

STATUS_FILE_MODE = 0o640  # the alprd group (technicians) may read it; nobody else


# -- systemd notification protocol ---------------------------------------------

def notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send one sd_notify datagram; False when not started by systemd (no NOTIFY_SOCKET)."""
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.send(message.encode(), socket.MSG_DONTWAIT)  # never block the event loop
    return True


def watchdog_interval_s(env: Mapping[str, str] = os.environ) -> float | None:
    """Half of WatchdogSec= (systemd's advice), or None when no watchdog is asked of us."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2 / 1_000_000


def pipeline_stalled(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Frames keep arriving but none gets processed: inference is stuck."""
    return (after.get("frames_captured", 0) > before.get("frames_captured", 0) + 1
            and after.get("frames_processed", 0) == before.get("frames_processed", 0))


# -- figures the status file carries --------------------------------------------

def disk_status(path: Path, cfg: StatusConfig) -> dict[str, Any]:
    usage = shutil.disk_usage(path)
    free_mb = usage.free // 2**20
    level = "FAIL" if free_mb < cfg.disk_fail_mb else "WARN" if free_mb < cfg.disk_warn_mb else "OK"
    return {"free_mb": free_mb, "total_mb": usage.total // 2**20, "level": level}


def backlog_status(store: Store, now: datetime | None = None) -> dict[str, Any]:
    count, oldest = store.backlog()
    now = now or datetime.now(UTC)
    age_h = round((now - parse_iso(oldest)).total_seconds() / 3600, 2) if oldest else None
    return {"reads": count, "oldest": oldest, "oldest_age_h": age_h}


def storage_status(store: Store, cfg: Config) -> dict[str, Any]:
    """The ``storage`` section: free disk and the upload backlog."""
    return {"disk": disk_status(cfg.store.state_dir, cfg.status), "backlog": backlog_status(store)}


def model_info(path: Path) -> dict[str, Any]:
    """Which model file is in use: name, size, short SHA-256 and date (our models carry no version)."""
    if not path.is_file():
        return {"file": str(path), "present": False}
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    stat = path.stat()
    return {"file": str(path), "present": True, "size_kb": stat.st_size // 1024,
            "sha256": digest.hexdigest()[:12],
            "modified": datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%d")}


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` in one step, so that readers see the old or the new file, whole."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), STATUS_FILE_MODE)
            json.dump(data, fh, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# -- the daemon services ----------------------------------------------------------

class StatusReporter:
    """Owns the status file and the systemd notifications of one daemon."""

    def __init__(self, daemon: Daemon, env: Mapping[str, str] = os.environ):
        self.daemon = daemon
        self.cfg = daemon.config.status
        self.path = daemon.config.store.state_dir / self.cfg.file
        self.env = env
        self.started_at = utc_now()
        self.log = get_logger("alprd.status")

    def snapshot(self, state: str = "running") -> dict[str, Any]:
        c = self.daemon.config
        return {"written_at": utc_now(), "state": state, "pid": os.getpid(), "version": __version__,
                "device_id": c.device.id, "camera_id": c.camera.id, "started_at": self.started_at,
                "interval_s": self.cfg.interval_s, **self.daemon.status()}

    async def write_file(self, stop: asyncio.Event) -> None:
        """Service: rewrite the status file until the daemon stops, then mark it stopped."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            stopping = stop.is_set()
            try:
                await asyncio.to_thread(write_atomically, self.path,
                                        self.snapshot("stopped" if stopping else "running"))
            except OSError as err:  # a full disk must not stop reading plates
                self.log.error("status_file_failed", path=str(self.path), error=str(err))
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.interval_s)

    async def notify_systemd(self, stop: asyncio.Event) -> None:
        """Service: READY once running, STATUS lines, WATCHDOG pings while the pipeline moves."""
        if not self.env.get("NOTIFY_SOCKET"):
            return
        period = min(watchdog_interval_s(self.env) or self.cfg.interval_s, self.cfg.interval_s)
        watchdog = watchdog_interval_s(self.env) is not None
        self._send(f"READY=1\nSTATUS={summary_line(self.daemon.status())}")
        before = self.daemon.stats.as_dict()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
            after = self.daemon.stats.as_dict()
            stalled = pipeline_stalled(before, after)
            before = after
            lines = [f"STATUS={'STALLED: ' if stalled else ''}{summary_line(self.daemon.status())}"]
            if watchdog and not stalled:
                lines.append("WATCHDOG=1")
            self._send("\n".join(lines))
        self._send("STOPPING=1\nSTATUS=stopping")

    def _send(self, message: str) -> None:
        try:
            notify(message, self.env)
        except OSError as err:
            self.log.warning("sd_notify_failed", error=str(err))


def summary_line(status: Mapping[str, Any]) -> str:
    """One line for ``systemctl status``: camera rate, reads, GPS, backlog."""
    p = status.get("pipeline", {})
    cam = status.get("camera", {})
    lost = " (camera lost)" if cam.get("state") == "reconnecting" else ""
    parts = [f"{cam.get('fps', p.get('fps', 0))} fps{lost}", f"{p.get('reads', 0)} reads"]
    gps = status.get("gps")
    if gps:
        fix = gps.get("fix")
        parts.append(f"gps {fix['state'] if fix else 'no fix'}")
    backlog = status.get("storage", {}).get("backlog")
    if backlog:
        parts.append(f"backlog {backlog['reads']}")
    return ", ".join(parts)
