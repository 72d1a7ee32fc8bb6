"""Plug the hotlist into a daemon: matching listener, reload service, sync, status."""

from __future__ import annotations

import sqlite3
from typing import Any

from alprd.config import Config
from alprd.hotlist.alerts import Alerter
from alprd.hotlist.live import Hotlist
from alprd.hotlist.sync import HotlistSync
from alprd.store import Store


def attach_hotlist(daemon: Any, config: Config, store: Store) -> Alerter:
    """Load the list now (it is in service before the first frame) and wire its parts.

    The sync subscribes to the broker only when ``[uplink] enabled``. Returns the
    alerter, whose ``on_alert`` listeners are called after each alert is stored.
    """
    hotlist = Hotlist(store, config.hotlist)
    try:
        hotlist.reload()
    except sqlite3.Error as err:  # the reload service retries; reads are still stored meanwhile
        hotlist.log.error("hotlist_load_failed", error=str(err))
    alerter = Alerter(store, hotlist, config)
    daemon.read_listeners.append(alerter)
    daemon.services.append(hotlist.watch)
    daemon.status_providers["hotlist"] = lambda: {**hotlist.status(), **alerter.status()}
    if config.uplink.enabled:
        sync = HotlistSync(config, store, on_change=hotlist.reload)
        daemon.services.append(sync.run)
        daemon.status_providers["hotlist_sync"] = sync.status
    return alerter
