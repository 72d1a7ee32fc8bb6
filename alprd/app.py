"""Where the daemon is put together: every part is built and connected here, top to bottom.

To answer "who calls X?" read this one function. The pipeline engine
(:class:`~alprd.daemon.Daemon`) knows no feature; each part is plugged in with
``daemon.on_read(callback)`` (called with each committed read, in the order
registered) or ``daemon.add_service(name, run, status)`` (a background
coroutine and/or a section of the health status).
"""

from __future__ import annotations

import sqlite3
from functools import partial

from alprd.capture import FrameSource, open_source
from alprd.capture.reconnect import Reconnecting
from alprd.config import Config
from alprd.daemon import Daemon
from alprd.daemon.status import StatusReporter, model_info, storage_status
from alprd.gps import FixedPosition
from alprd.gps.serial_reader import SerialGps
from alprd.hotlist.alerts import Alerter
from alprd.hotlist.hotlist import Hotlist
from alprd.hotlist.sync import HotlistSync
from alprd.policy.retention import RetentionService
from alprd.screen.server import Screen
from alprd.store import Store, open_store
from alprd.uplink.uploader import Uploader
from alprd.vision import load_reader
from alprd.vision.reader import PlateReader


def build_daemon(
    config: Config,
    store: Store | None = None,
    source: FrameSource | None = None,
    reader: PlateReader | None = None,
) -> Daemon:
    """The configured daemon, ready to ``run``; arguments override parts (tests, demo)."""
    store = store or open_store(config.store)
    source = source or open_source(config.camera)
    reader = reader or load_reader(config.vision)
    gps = FixedPosition(config.gps) if config.gps.mode == "fixed" else (
        SerialGps(config.gps) if config.gps.mode == "serial" else None)
    daemon = Daemon(config, store, reader, source, gps.current if gps else None)

    if gps:
        daemon.add_service("gps", gps.run if isinstance(gps, SerialGps) else None, gps.status)
    if isinstance(source, Reconnecting):
        daemon.add_service("camera", source.interrupt_on_stop, source.status)

    # The hotlist is loaded now, so it is in service before the first frame; its
    # watch service retries a failed load and picks up later changes.
    hotlist = Hotlist(store, config.hotlist)
    try:
        hotlist.reload()
    except sqlite3.Error as err:  # reads are still stored meanwhile
        hotlist.log.error("hotlist_load_failed", error=str(err))
    alerter = Alerter(store, hotlist, config)
    daemon.on_read(alerter.on_read)  # matched before the uploader wakes for the read
    daemon.add_service("hotlist", hotlist.watch, lambda: {**hotlist.status(), **alerter.status()})

    if config.uplink.enabled:
        sync = HotlistSync(config, store, on_change=hotlist.reload)
        daemon.add_service("hotlist_sync", sync.run, sync.status)
        uploader = Uploader(config, store, heartbeat_status=daemon.status)
        daemon.add_service("uplink", uploader.run, uploader.status)
        daemon.on_read(uploader.on_read)
        alerter.on_alert(uploader.notify_alert)  # an alert goes out at once, ahead of the reads

    if config.screen.enabled:  # the officer's screen: live reads, alerts, dispositions, BOLOs
        screen = Screen(config, store, daemon.status)
        daemon.on_read(screen.on_read)
        alerter.on_alert(screen.on_alert)  # registered after the uplink's: the alert is on its way first
        if config.uplink.enabled:
            screen.on_record(uploader.notify_records)
        daemon.add_service("screen", screen.run, screen.status)

    retention = RetentionService(store, config.policy)  # purges at start, then daily
    daemon.add_service("retention", retention.run, retention.status)

    models = {role: model_info(path) for role, path in config.vision.model_files().items()}
    daemon.add_service("storage", status=partial(storage_status, store, config))
    daemon.add_service("models", status=models.copy)
    reporter = StatusReporter(daemon)
    daemon.add_service("status_file", reporter.write_file)
    daemon.add_service("systemd", reporter.notify_systemd)
    return daemon
