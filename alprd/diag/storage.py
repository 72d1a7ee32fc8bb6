"""``diag storage``: state directory, free space, write speed, database health, upload backlog.

The database is opened read-only, through the store's own queries: a diagnostic never migrates or locks it.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import stat
import time
from datetime import UTC, datetime

from alprd.config import Config
from alprd.daemon.status import disk_status
from alprd.diag import Area, Check, DiagOptions
from alprd.records import parse_iso
from alprd.store import MIGRATIONS, Store, StoreError

SPEED_TEST_MB = 8
SLOW_MB_S = 2.0


def check(config: Config, options: DiagOptions) -> list[Check]:
    area = Area("storage")
    d = config.store.state_dir
    if not d.is_dir():
        area.fail("state dir", f"{d} missing", "alprd was not installed on this unit, or store.state_dir is wrong",
                  f"run scripts/install.sh, or `sudo install -d -o alprd -g alprd -m 750 {d}`")
        return area.checks
    if not os.access(d, os.W_OK | os.X_OK):
        area.fail("state dir", f"{d} not writable by {getpass.getuser()}",
                  "diagnostics run as another user than the service, or wrong ownership",
                  f"run as the service user: `sudo -u alprd alprd diag storage`; else `sudo chown -R alprd: {d}`")
        return area.checks
    area.ok("state dir", str(d))
    disk = disk_status(d, config.status)
    value = f"{disk['free_mb']} MB free of {disk['total_mb']} MB"
    if disk["level"] == "OK":
        area.ok("disk", value)
    else:
        add = area.fail if disk["level"] == "FAIL" else area.warn
        add("disk", value, "little free space: reads could not be stored soon",
            "check the upload backlog (`alprd status`), remove old logs (`journalctl --vacuum-size=100M`)")
    _write_speed(area, d)
    _database(area, config)
    return area.checks


def _write_speed(area: Area, directory) -> None:
    path = directory / ".diag-speed-test"
    block = os.urandom(1 << 20)
    t0 = time.perf_counter()
    try:
        with open(path, "wb") as fh:
            fh.writelines(block for _ in range(SPEED_TEST_MB))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        area.fail("write", str(err), "the disk refuses writes (full, read-only, failing)",
                  "check `dmesg` for I/O errors and `df -h`; replace a failing SD card or SSD")
        return
    finally:
        path.unlink(missing_ok=True)
    speed = SPEED_TEST_MB / (time.perf_counter() - t0)
    if speed < SLOW_MB_S:
        area.warn("write", f"{speed:.1f} MB/s with fsync", "slow storage (worn SD card)",
                  "use an industrial SD card or an SSD")
    else:
        area.ok("write", f"{speed:.1f} MB/s with fsync")


def _database(area: Area, config: Config) -> None:
    path = config.store.path
    if not path.exists():
        area.warn("database", f"{path} not created yet", "the daemon has not run on this unit",
                  "start it: `sudo systemctl start alprd`")
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        area.warn("permissions", f"{path} mode {mode:o}", "others than the service user may read stored reads",
                  f"`sudo chmod 600 {path}` (scripts/install.sh sets this)")
    try:
        store = Store(path, readonly=True)
        try:
            integrity, version = store.quick_check(), store.schema_version
            count, oldest = store.backlog()
        finally:
            store.close()
    except (StoreError, sqlite3.Error) as err:
        area.fail("database", f"{path}: {err}", "the file is damaged or not an alprd database",
                  "stop alprd, move the file aside (keep it for evidence) and restart to create a new one")
        return
    if integrity != "ok":
        area.fail("database", f"quick_check: {integrity}", "database damaged (power loss on a bad card?)",
                  "stop alprd, copy the file off for recovery, move it aside and restart")
        return
    area.ok("database", f"{path.name} ok, schema {version}/{len(MIGRATIONS)}")
    _backlog(area, config, count, oldest)


def _backlog(area: Area, config: Config, count: int, oldest: str | None) -> None:
    if not count:
        area.ok("backlog", "0 reads waiting for upload")
        return
    days = (datetime.now(UTC) - parse_iso(oldest)).total_seconds() / 86400
    value = f"{count} reads waiting, oldest {days:.1f} days"
    up = config.uplink
    if days < up.backlog_warn_days:
        area.ok("backlog", value)
        return
    add = area.fail if days >= up.backlog_critical_days else area.warn
    add("backlog", value, "reads are not reaching the department (no broker, link down)",
        "run `alprd diag mqtt`; policy requires transfer within "
        f"{up.backlog_critical_days:g} days")
