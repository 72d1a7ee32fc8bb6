"""The uplink end to end against a real Mosquitto broker and real SQLite files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from structlog.testing import capture_logs

from alprd.config import Config
from alprd.store import Read, Store, iso, utc_now
from alprd.uplink.ingest import Ingest, IngestDB
from alprd.uplink.policy import DAY_S
from alprd.uplink.uploader import Uploader
from conftest import Broker, make_config

CROP = cv2.imencode(".jpg", np.full((24, 96, 3), 200, np.uint8))[1].tobytes()


def uplink_config(tmp_path: Path, port: int, **uplink) -> Config:
    values = {"enabled": True, "port": port, "batch_size": 20, "batch_max_age_s": 0.2,
              "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "heartbeat_s": 60}
    values.update(uplink)
    return make_config(tmp_path, device={"id": "car7"}, uplink=values)


def fill(store: Store, n: int, ts: str | None = None) -> list[str]:
    reads = [Read(f"ABC{i:04d}", 0.9, (0.9,) * 7, "cam0", "car7", crop_jpeg=CROP, **({"ts": ts} if ts else {}))
             for i in range(n)]
    with store.transaction() as db:
        db["reads"].insert_all([r.to_row() for r in reads])
    return [r.id for r in reads]


def add_alert(store: Store, read_id: str) -> str:
    alert_id = str(uuid.uuid4())
    payload = {"alert_id": alert_id, "plate": "ABC0000", "verify": "confirm through NCIC before acting"}
    with store.transaction() as db:
        db["alerts"].insert({"id": alert_id, "read_id": read_id, "plate": "ABC0000", "ts": utc_now(),
                             "payload": json.dumps(payload)})
    return alert_id


def wait_until(cond, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Running:
    """An Uploader service running in its own event loop thread, like in the daemon."""

    def __init__(self, uploader: Uploader):
        self.uploader = uploader
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        wait_until(lambda: self.stop_event is not None, what="uploader loop")

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.stop_event = asyncio.Event()
        self.loop.run_until_complete(self.uploader.run(self.stop_event))
        self.loop.close()

    def call(self, fn):
        """Run fn in the uploader's loop (where notify_alert belongs) and return its result."""
        return asyncio.run_coroutine_threadsafe(_call(fn), self.loop).result(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        assert not self.thread.is_alive()


async def _call(fn):
    return fn()


@pytest.fixture
def ingest_factory(tmp_path):
    started: list[tuple[Ingest, IngestDB]] = []

    def make(config: Config, client_id: str = "dept-ingest") -> Ingest:
        db = IngestDB(tmp_path / "dept" / "ingest.db")
        ingest = Ingest(config.uplink, db, client_id)
        ingest.start()
        started.append((ingest, db))
        wait_until(lambda: ingest.link.connected, what="ingest connected")
        return ingest

    yield make
    for ingest, db in started:
        ingest.stop()
        db.close()


def ingested(ingest: Ingest) -> int:
    return ingest.db.count("reads")


def test_reads_and_alerts_are_delivered_alert_first_and_marked_on_ack(tmp_path, broker, store, ingest_factory):
    config = uplink_config(tmp_path, broker.port)
    ingest = ingest_factory(config)
    order: list[str] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: order.append(m.topic.rsplit("/", 1)[-1])
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("alprd/car7/#", qos=1)
    watcher.loop_start()
    ids = fill(store, 95)
    alert_id = add_alert(store, ids[-1])
    running = Running(Uploader(config, store))
    try:
        wait_until(lambda: ingested(ingest) == 95 and ingest.db.count("alerts") == 1, what="delivery")
        wait_until(lambda: store.backlog()[0] == 0, what="marked uploaded")
        # an alert written while running goes out at once, without waiting for the batch age
        second = add_alert(store, ids[0])
        running.call(running.uploader.notify_alert)
        wait_until(lambda: ingest.db.count("alerts") == 2, timeout=2, what="second alert")
        status = running.call(running.uploader.status)
    finally:
        running.stop()
        watcher.loop_stop()
    data = [k for k in order if k in ("reads", "alerts")]
    assert data[0] == "alerts", order
    assert order[0] == "status"
    assert status["connected"] and status["backlog"] == 0 and status["reads_uploaded"] == 95
    assert status["batches_acked"] == 5  # 95 reads in batches of 20
    row = ingest.db.conn.execute("select crop_jpeg, device_id, copies from reads where id = ?", [ids[3]]).fetchone()
    assert row == (CROP, "car7", 1)
    published = store.query("select id from alerts where published_at is not null")
    assert {r["id"] for r in published} == {alert_id, second}
    got = ingest.db.conn.execute("select payload from alerts where id = ?", [alert_id]).fetchone()[0]
    assert "NCIC" in got
    device = "select state, heartbeat from devices where device_id = 'car7'"
    # the clean shutdown message replaces the birth message
    wait_until(lambda: ingest.db.conn.execute(device).fetchone()[0] == "offline", what="offline status")
    devices = ingest.db.conn.execute(device).fetchone()
    assert json.loads(devices[1])["uplink"]["broker"] == f"localhost:{broker.port}"
