"""The uplink end to end against a real Mosquitto broker and real SQLite files."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import Broker, make_config
from structlog.testing import capture_logs

from alprd.audit import AccessLog
from alprd.config import Config
from alprd.hotlist import repository
from alprd.hotlist.alerts import Disposition, set_disposition
from alprd.hotlist.entries import Entry
from alprd.policy.retention import purge
from alprd.records import Read, iso, utc_now
from alprd.store import Store
from alprd.uplink.ingest import Ingest, IngestDB
from alprd.uplink.link import claim_client_id
from alprd.uplink.uploader import Uploader

CROP = cv2.imencode(".jpg", np.full((24, 96, 3), 200, np.uint8))[1].tobytes()


def uplink_config(tmp_path: Path, port: int, **uplink) -> Config:
    values = {"enabled": True, "port": port, "batch_size": 20, "batch_max_age_s": 0.2,
              "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "heartbeat_s": 60, "receipt_timeout_s": 0.5}
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


ALPRD = [sys.executable, "-c", "import sys; from alprd.cli import main; sys.exit(main())"]


def write_config(tmp_path: Path, port: int, extra_uplink: str = "") -> Path:
    """The same settings as ``uplink_config``, as a file for ``alprd`` in a subprocess."""
    path = tmp_path / "alprd.toml"
    path.write_text(
        f'[device]\nid = "car7"\n[store]\nstate_dir = "{tmp_path}"\n[logging]\nlevel = "info"\n'
        f"[uplink]\nenabled = true\nport = {port}\nbatch_max_age_s = 0.2\n"
        f"reconnect_min_s = 0.1\nreconnect_max_s = 0.5\nreceipt_timeout_s = 0.5\n{extra_uplink}")
    return path


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

    def resend_dispositions(self, store: Store) -> None:
        """As after a crash between sending the dispositions and their receipt: sent again, receipted again."""
        with store.transaction() as db:
            db.execute("update alert_dispositions set uploaded_at = null")
        self.call(self.uploader.notify_records)
        wait_until(lambda: not store.query("select 1 from alert_dispositions where uploaded_at is null"),
                   what="re-sent dispositions receipted")

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


def test_broker_outage_buffers_reads_and_delivers_every_one_after(tmp_path, broker, store, ingest_factory):
    config = uplink_config(tmp_path, broker.port)
    ingest = ingest_factory(config)
    ids = fill(store, 40)
    running = Running(Uploader(config, store))
    link = running.uploader.link
    try:
        wait_until(lambda: ingested(ingest) == 40 and store.backlog()[0] == 0, what="first reads")
        broker.stop()
        wait_until(lambda: not link.connected, what="uploader sees the outage")
        ids += fill(store, 60)
        wait_until(lambda: link.attempt >= 3, what="several reconnect attempts")
        assert "refused the connection" in link.error and "uplink.port" in link.error
        assert store.backlog()[0] == 60  # kept, not lost
        broker.start()
        wait_until(lambda: ingested(ingest) == 100, timeout=30, what="all reads after the outage")
        wait_until(lambda: store.backlog()[0] == 0, what="all marked")
        assert link.error is None
    finally:
        running.stop()
    got = {r[0] for r in ingest.db.conn.execute("select id from reads")}
    assert got == set(ids)


def test_receiver_away_gets_what_was_sent_meanwhile(tmp_path, broker, store, ingest_factory):
    """The ingest session is persistent: the broker queues batches for it while it is down,
    and the reads are marked only when it is back and has committed them."""
    config = uplink_config(tmp_path, broker.port)
    first = ingest_factory(config, client_id="dept-1")
    first.stop()
    ids = fill(store, 30)
    running = Running(Uploader(config, store))
    try:
        wait_until(lambda: running.uploader.resent >= 2, what="batches sent and sent again")
        assert store.backlog()[0] == 30, "the broker's PUBACK is not the department's commit"
        again = ingest_factory(config, client_id="dept-1")
        wait_until(lambda: store.backlog()[0] == 0, what="marked on the receipts")
    finally:
        running.stop()
    rows = again.db.conn.execute("select count(*), count(distinct id) from reads").fetchone()
    assert rows == (30, 30)
    assert {r[0] for r in again.db.conn.execute("select id from reads")} == set(ids)


def test_no_receiver_yet_marks_nothing_then_every_read_arrives_once(tmp_path, broker, store, ingest_factory):
    """PUBACK reason 16 (no matching subscribers) is not success: the batches wait and go again."""
    config = uplink_config(tmp_path, broker.port)
    ids = fill(store, 50)
    with capture_logs() as logs:
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: running.uploader.unheard >= 3, what="PUBACKs with no matching subscribers")
            assert store.backlog()[0] == 50 and running.uploader.reads_uploaded == 0
            ingest = ingest_factory(config)
            wait_until(lambda: store.backlog()[0] == 0, what="marked on the receipts")
            status = running.call(running.uploader.status)
        finally:
            running.stop()
    rows = ingest.db.conn.execute("select count(*), count(distinct id), max(copies) from reads").fetchone()
    assert rows[:2] == (50, 50)
    assert {r[0] for r in ingest.db.conn.execute("select id from reads")} == set(ids)
    assert status["reads_uploaded"] == 50 and status["no_receiver"] >= 3
    warning = next(e for e in logs if e["event"] == "uplink_no_receiver")
    assert "alprd ingest" in warning["fix"]


def test_daemon_killed_mid_upload_then_restarted_delivers_each_read_exactly_once(tmp_path, broker, ingest_factory):
    n = 1500
    config = uplink_config(tmp_path, broker.port, batch_size=10, max_inflight_batches=1)
    config_file = write_config(tmp_path, broker.port, "batch_size = 10\nmax_inflight_batches = 1\n")
    store = Store(config.store.path)
    ids = fill(store, n)
    store.close()
    ingest = ingest_factory(config)
    cmd = [*ALPRD, "-c", str(config_file), "upload", "--drain"]
    proc = subprocess.Popen(cmd)
    try:
        wait_until(lambda: ingested(ingest) >= 100, timeout=30, what="upload under way")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # the broker published the last will for the dead connection
    status = "select coalesce(status, '') from devices where device_id = 'car7'"
    wait_until(lambda: "connection lost" in (ingest.db.conn.execute(status).fetchone() or ("",))[0],
               what="last will")
    store = Store(config.store.path)
    left = store.backlog()[0]
    assert 0 < left < n, "the kill must land mid-upload for this test to mean anything"
    marked_only_if_committed(store, ingest.db)
    store.close()
    assert subprocess.run(cmd, check=False, timeout=120).returncode == 0
    stored_once(ingest.db, ids)
    store = Store(config.store.path)
    assert store.backlog()[0] == 0
    store.close()


def stored_once(db: IngestDB, ids: list[str]) -> None:
    """Every read arrived, and exactly once."""
    rows = db.conn.execute("select count(*), count(distinct id) from reads").fetchone()
    assert rows == (len(ids), len(ids))
    assert {r[0] for r in db.conn.execute("select id from reads")} == set(ids)


def marked_only_if_committed(store: Store, db: IngestDB) -> set[str]:
    """The reads marked uploaded on the car (the purgeable ones), each already in the department's database."""
    marked = {r["id"] for r in store.query("select id from reads where uploaded_at is not null")}
    assert marked <= {r[0] for r in db.conn.execute("select id from reads")}
    return marked


def purged_only_if_committed(store: Store, db: IngestDB) -> set[str]:
    """Purge everything purgeable on the car; the reads it deleted, each already in the department's database."""
    def on_car() -> set[str]:
        return {r["id"] for r in store.query("select id from reads")}

    before = on_car()
    purge(store, 1, now=datetime.now(UTC) + timedelta(days=2))
    deleted = before - on_car()
    assert deleted <= {r[0] for r in db.conn.execute("select id from reads")}
    return deleted


def test_broker_killed_mid_upload_loses_nothing(tmp_path, broker, store, ingest_factory):
    """Mosquitto SIGKILLed loses the queue it had not saved; what had no receipt is sent again."""
    config = uplink_config(tmp_path, broker.port, batch_size=10)
    ingest = ingest_factory(config)
    ids = fill(store, 1500)
    running = Running(Uploader(config, store))
    try:
        wait_until(lambda: ingested(ingest) >= 100, what="upload under way")
        broker.kill()
        wait_until(lambda: not running.uploader.link.connected, what="uploader sees the outage")
        deleted = purged_only_if_committed(store, ingest.db)
        assert 0 < len(deleted) < len(ids), "the kill must land mid-upload for this test to mean anything"
        broker.start()
        wait_until(lambda: store.backlog()[0] == 0, timeout=60, what="every read marked on its receipt")
    finally:
        running.stop()
    stored_once(ingest.db, ids)


def test_broker_queue_overflow_while_the_receiver_is_away_loses_nothing(tmp_path, store, ingest_factory):
    """``max_queued_messages`` drops what does not fit; without a receipt, it is sent again."""
    broker = Broker(tmp_path, "max_queued_messages 2\nallow_anonymous true")
    broker.start()
    try:
        config = uplink_config(tmp_path, broker.port, batch_size=10, max_inflight_batches=6)
        ingest_factory(config, client_id="dept-1").stop()  # its session stays, and queues
        ids = fill(store, 200)
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: running.uploader.resent >= 6, what="batches sent and sent again")
            assert store.backlog()[0] == 200
            again = ingest_factory(config, client_id="dept-1")
            wait_until(lambda: store.backlog()[0] == 0, timeout=60, what="every read marked on its receipt")
        finally:
            running.stop()
        stored_once(again.db, ids)
    finally:
        broker.stop()


def test_receiver_killed_mid_batch_then_restarted_stores_each_read_once(tmp_path, broker, store):
    config = uplink_config(tmp_path, broker.port, batch_size=10)
    db_path = tmp_path / "dept.db"
    cmd = [*ALPRD, "-c", str(write_config(tmp_path, broker.port)), "ingest", "--db", str(db_path),
           "--client-id", "dept-cli"]
    ids = fill(store, 2000)
    db = IngestDB(db_path)
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    running = Running(Uploader(config, store))
    try:
        wait_until(lambda: db.count("reads") >= 100, what="receiving under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        marked = marked_only_if_committed(store, db)
        assert len(marked) < len(ids), "the kill must land mid-upload for this test to mean anything"
        proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        wait_until(lambda: store.backlog()[0] == 0, timeout=60, what="every read marked on its receipt")
        stored_once(db, ids)
    finally:
        running.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        db.close()


def test_wrong_password_is_a_clear_error_and_reads_keep_buffering(tmp_path, store, ingest_factory, monkeypatch):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "car7", "right-pass"], check=True)
    broker = Broker(tmp_path, f"password_file {passwd}\nallow_anonymous false")
    broker.start()
    try:
        wrong = uplink_config(tmp_path, broker.port, username="car7", password="wrong-pass")
        fill(store, 10)
        with capture_logs() as logs:
            running = Running(Uploader(wrong, store))
            link = running.uploader.link
            try:
                wait_until(lambda: link.attempt >= 3, what="repeated refused logins")
                fill(store, 5)
                status = running.call(running.uploader.status)
            finally:
                running.stop()
        assert "refused the login" in status["error"]
        assert "check uplink.username and uplink.password" in status["error"]
        assert status["backlog"] == 15 and not status["connected"]
        downs = [e for e in logs if e["event"] == "uplink_down"]
        assert len(downs) == 1, "the same error is logged once, not at every retry"
        # the password from the environment (env:NAME in the config file) works
        monkeypatch.setenv("ALPRD_TEST_MQTT_PW", "right-pass")
        right = uplink_config(tmp_path, broker.port, username="car7", password="env:ALPRD_TEST_MQTT_PW")
        ingest_factory(right)
        running = Running(Uploader(right, store))
        try:
            wait_until(lambda: store.backlog()[0] == 0, what="upload with the right password")
        finally:
            running.stop()
    finally:
        broker.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _make_cert(d: Path, ca: str, name: str, san: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A test CA, a broker certificate for localhost, a client certificate, and an unrelated CA."""
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _make_cert(d, "ca", "broker", "DNS:localhost,IP:127.0.0.1")
    _make_cert(d, "ca", "car7", "")
    return d


def test_tls_with_client_certificate_delivers_and_a_wrong_ca_is_explained(tmp_path, pki, store, ingest_factory):
    broker = Broker(tmp_path, f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'broker.pem'}\n"
                              f"keyfile {pki / 'broker.key'}\nrequire_certificate true\nallow_anonymous true")
    broker.start()
    try:
        tls = {"ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "car7.pem"),
               "key_file": str(pki / "car7.key")}
        config = uplink_config(tmp_path, broker.port, **tls)
        ingest = ingest_factory(config)
        ids = fill(store, 25)
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: ingested(ingest) == 25, what="delivery over TLS")
        finally:
            running.stop()
        assert {r[0] for r in ingest.db.conn.execute("select id from reads")} == set(ids)

        fill(store, 5)
        untrusted = uplink_config(tmp_path, broker.port, **{**tls, "ca_file": str(pki / "other-ca.pem")})
        running = Running(Uploader(untrusted, store))
        try:
            wait_until(lambda: running.uploader.link.error is not None, what="TLS failure")
            error = running.uploader.link.error
        finally:
            running.stop()
        assert "not trusted" in error and "uplink.ca_file" in error
        assert store.backlog()[0] == 5
    finally:
        broker.stop()


def test_transfer_window_alarm_is_logged_published_and_cleared(tmp_path, broker, store, ingest_factory):
    config = uplink_config(tmp_path, broker.port, backlog_warn_days=25, backlog_critical_days=30)
    ingest_factory(config)
    beats: list[dict] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: beats.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("alprd/car7/heartbeat", qos=1)
    watcher.loop_start()
    fill(store, 3, ts=iso(datetime.now(UTC) - timedelta(days=31)))
    AccessLog(store).record("op1", "search", case_number="C-1")
    try:
        with capture_logs() as logs:
            running = Running(Uploader(config, store))
            try:
                wait_until(lambda: store.backlog()[0] == 0, what="upload")
                wait_until(lambda: beats and beats[-1]["uplink"]["transfer"] == "ok", what="all-clear heartbeat")
            finally:
                running.stop()
    finally:
        watcher.loop_stop()
    assert beats[0]["uplink"]["transfer"] == "critical"
    assert beats[0]["audit_head"] == {"seq": 1, "mac": AccessLog(store).show()[0].mac}  # the log's head goes too
    assert beats[0]["uplink"]["oldest_age_days"] >= 31
    assert {"backlog", "oldest_unuploaded", "alerts_waiting"} <= set(beats[0]["uplink"])
    events = [(e["event"], e["log_level"]) for e in logs]
    assert ("transfer_window_exceeded", "error") in events
    assert ("transfer_window_ok", "info") in events


def test_ingest_refuses_bad_messages_and_keeps_going(tmp_path, broker, store, ingest_factory):
    config = uplink_config(tmp_path, broker.port)
    ingest = ingest_factory(config)
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    try:
        for t, payload in [("alprd/car9/reads", b"\x1f\x8bgarbage"), ("alprd/car9/reads", b"[1, 2]"),
                           ("alprd/car9/alerts", b"\xff\xfe not json")]:
            sender.publish(t, payload, qos=1).wait_for_publish(5)
    finally:
        sender.loop_stop()
    wait_until(lambda: ingest.db.count("refused") == 3, what="refusals recorded")
    fill(store, 5)
    running = Running(Uploader(config, store))
    try:
        wait_until(lambda: ingested(ingest) == 5, what="good batch after bad ones")
    finally:
        running.stop()
    errors = [r[0] for r in ingest.db.conn.execute("select error from refused")]
    assert any("gzip" in e for e in errors) and any("UTF-8 JSON" in e for e in errors)


def test_ingest_command_receives_until_sigterm(tmp_path, broker, store):
    config = uplink_config(tmp_path, broker.port)
    db_path = tmp_path / "dept.db"
    proc = subprocess.Popen([*ALPRD, "-c", str(write_config(tmp_path, broker.port)), "ingest",
                             "--db", str(db_path), "--client-id", "dept-cli"],
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # JSON log lines
            if "uplink_connected" in line:
                break
        ids = fill(store, 30)
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: store.backlog()[0] == 0, what="upload")
        finally:
            running.stop()
        db = IngestDB(db_path)
        try:
            wait_until(lambda: db.count("reads") == 30, what="ingest command stored the reads")
            assert {r[0] for r in db.conn.execute("select id from reads")} == set(ids)
        finally:
            db.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_upload_drain_without_broker_fails_with_the_reason(tmp_path, store):
    fill(store, 3)
    down = Broker(tmp_path)  # configured, never started: nothing listens on its port
    result = subprocess.run([*ALPRD, "-c", str(write_config(tmp_path, down.port)), "upload", "--drain",
                             "--timeout", "1"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "not drained" in result.stderr and "refused the connection" in result.stderr
    assert store.backlog()[0] == 3


def test_two_uploaders_of_one_unit_do_not_knock_each_other_off(tmp_path, broker, store):
    """`alprd upload` while the daemon runs: same device id, two connections that both stay up."""
    config = uplink_config(tmp_path, broker.port)
    first, second = Running(Uploader(config, store)), Running(Uploader(config, store))
    try:
        links = (first.uploader.link, second.uploader.link)
        wait_until(lambda: all(link.connected for link in links), what="both connected")
        time.sleep(0.5)  # a broker that saw one client id twice has dropped the first by now
        assert [(link.connected, link.connects) for link in links] == [(True, 1), (True, 1)]
        assert links[0].client_id != links[1].client_id
    finally:
        first.stop()
        second.stop()


def test_receivers_on_one_host_claim_different_stable_client_ids(tmp_path):
    first, lock1 = claim_client_id("alprd-ingest-host", tmp_path)
    second, lock2 = claim_client_id("alprd-ingest-host", tmp_path)
    assert (first, second) == ("alprd-ingest-host", "alprd-ingest-host-2")
    lock1.close()  # the first receiver stops; its restart gets its id (and its broker session) back
    again, lock3 = claim_client_id("alprd-ingest-host", tmp_path)
    assert again == "alprd-ingest-host"
    lock2.close()
    lock3.close()


def test_daemon_with_uplink_enabled_uploads_its_reads(tmp_path, broker, ingest_factory):
    from fakes import fake_reader
    from test_pipeline import ScriptedSource

    from alprd.app import build_daemon

    config = make_config(tmp_path, device={"id": "car7"}, pipeline={"track_gap_s": 0.1},
                         uplink={"enabled": True, "port": broker.port, "batch_max_age_s": 0.2,
                                 "heartbeat_s": 0.3})
    ingest = ingest_factory(config)
    script = [[("ABC123", 0.9)]] * 3 + [[]] * 40 + [[("XYZ789", 0.8)]] * 3 + [[]] * 100  # 1.5 s at 100 fps
    store = Store(config.store.path)
    daemon = build_daemon(config, store=store, reader=fake_reader(),
                          source=ScriptedSource(script, fps=100, realtime=True))
    asyncio.run(daemon.run(install_signals=False))
    try:
        wait_until(lambda: ingested(ingest) == 2, what="the daemon's reads")
        plates = {r[0] for r in ingest.db.conn.execute("select plate from reads")}
        assert plates == {"ABC123", "XYZ789"}
        assert store.backlog()[0] == 0
        def heartbeat() -> dict:
            return json.loads(ingest.db.conn.execute("select heartbeat from devices").fetchone()[0])

        wait_until(lambda: heartbeat()["pipeline"]["reads"] == 2, what="a heartbeat after both reads")
        beat = heartbeat()
        assert {"pipeline", "uplink", "storage"} <= set(beat)  # every status provider's part
        assert beat["pipeline"]["fps"] > 0
        assert beat["storage"]["disk"]["free_mb"] > 0
    finally:
        store.close()


def test_publish_refused_by_broker_acl_leaves_reads_buffered(tmp_path, store):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite alprd/car7/status\ntopic readwrite alprd/car7/heartbeat\n")
    broker = Broker(tmp_path, f"acl_file {acl}\nallow_anonymous true")
    broker.start()
    try:
        fill(store, 5)
        config = uplink_config(tmp_path, broker.port, reconnect_max_s=60)
        with capture_logs() as logs:
            running = Running(Uploader(config, store))
            try:
                wait_until(lambda: running.uploader.refused >= 1, what="the broker's refusal")
                status = running.call(running.uploader.status)
            finally:
                running.stop()
        assert status["backlog"] == 5 and status["reads_uploaded"] == 0
        refusal = next(e for e in logs if e["event"] == "uplink_refused")
        assert "alprd/car7/reads" in refusal["fix"]
    finally:
        broker.stop()


def test_shared_subscription_spreads_batches_over_receivers(tmp_path, broker, store):
    """How a department scales out: several receivers in one $share group, each batch to one of them."""
    config = uplink_config(tmp_path, broker.port, batch_size=5)
    receivers = [Ingest(config.uplink, IngestDB(tmp_path / f"dept{i}.db"), f"dept-{i}", shared_group="dept")
                 for i in range(2)]
    for r in receivers:
        r.start()
    try:
        wait_until(lambda: all(r.link.connected for r in receivers), what="receivers connected")
        ids = fill(store, 100)
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: sum(ingested(r) for r in receivers) == 100, what="all batches")
        finally:
            running.stop()
        got = [{row[0] for row in r.db.conn.execute("select id from reads")} for r in receivers]
    finally:
        for r in receivers:
            r.stop()
            r.db.close()
    assert got[0] | got[1] == set(ids) and not got[0] & got[1]
    assert got[0] and got[1], "both receivers took a share"


def test_disposition_history_and_bolos_arrive_at_ingest_once_each(tmp_path, broker, store, ingest_factory):
    config = uplink_config(tmp_path, broker.port)
    ingest = ingest_factory(config)
    alert_id = add_alert(store, fill(store, 1)[0])
    assert set_disposition(store, alert_id, Disposition.MISREAD, "off1", "was ABC0008")
    repository.add_officer_entry(store, Entry("XY?9*", "bolo", priority=2, case_number="CFS-2026-90",
                                              expires="2099-01-31", officer_entered=True), "off1")
    running = Running(Uploader(config, store))
    try:
        wait_until(lambda: ingest.db.count("dispositions") == 1 and ingest.db.count("bolos") == 1, what="records")
        assert set_disposition(store, alert_id, Disposition.WRONG_STATE, "off1")  # a change: a new entry
        running.call(running.uploader.notify_records)
        wait_until(lambda: ingest.db.count("dispositions") == 2, timeout=3, what="the second disposition")
        wait_until(lambda: not store.query("select 1 from alert_dispositions where uploaded_at is null"),
                   what="dispositions marked on the receipt")
        running.resend_dispositions(store)
    finally:
        running.stop()
    rows = ingest.db.conn.execute("select alert_id, disposition, note, user, device_id, copies from dispositions "
                                  "order by ts").fetchall()
    assert [r[:5] for r in rows] == [(alert_id, "misread", "was ABC0008", "off1", "car7"),
                                     (alert_id, "wrong_state", "", "off1", "car7")]
    assert all(r[5] >= 2 for r in rows)  # delivered twice, stored once
    (bolo,) = ingest.db.conn.execute("select plate, case_number, priority, expires_at, entered_by from bolos")
    assert bolo == ("XY?9*", "CFS-2026-90", 2, "2099-01-31T23:59:59.999999Z", "off1")
    assert not store.query("select 1 from bolo_uploads where uploaded_at is null")
