"""The department's server on a real PostgreSQL (a throwaway cluster) and a real Mosquitto: several units
upload, a unit and the server are SIGKILLed mid-batch, and every read is stored exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import make_config
from test_uplink import ALPRD, CROP, Running, add_alert, uplink_config, wait_until

from alprd.audit import AccessLog
from alprd.config import HotlistConfig
from alprd.hotlist import repository
from alprd.hotlist.alerts import Disposition, set_disposition
from alprd.hotlist.department import share_bolos
from alprd.hotlist.entries import Entry
from alprd.policy.retention import purge
from alprd.policy.search import SearchQuery, search
from alprd.records import Read
from alprd.server import FleetStore, alert_row, received_bolos
from alprd.store import Store, open_store
from alprd.store.postgres import PgStore, translate
from alprd.uplink.ingest import Ingest
from alprd.uplink.uploader import Uploader


def unit_reads(store: Store, device: str, n: int) -> list[str]:
    reads = [Read(f"{device[-1]}AB{i:04d}", 0.9, (0.9,) * 7, "cam0", device, crop_jpeg=CROP) for i in range(n)]
    with store.transaction() as db:
        db["reads"].insert_all([r.to_row() for r in reads])
    return [r.id for r in reads]


def unit_config_file(d: Path, device: str, port: int) -> Path:
    path = d / "alprd.toml"
    path.write_text(f'[device]\nid = "{device}"\n[store]\nstate_dir = "{d}"\n[uplink]\nenabled = true\n'
                    f"port = {port}\nbatch_size = 10\nmax_inflight_batches = 1\nbatch_max_age_s = 0.2\n"
                    "reconnect_min_s = 0.1\nreconnect_max_s = 0.5\nreceipt_timeout_s = 0.5\n")
    return path


def server_config_file(d: Path, database: str, port: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    path = d / "server.toml"
    path.write_text(f'[store]\nstate_dir = "{d}"\ndatabase = "{database}"\n[policy]\nretention_days = 365\n'
                    f"[uplink]\nport = {port}\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n")
    return path


def fleet_counts(store: Store) -> tuple[int, int]:
    return tuple(store.query("select count(*) as n, count(distinct id) as d from reads")[0].values())


def test_translation_keeps_literals_and_maps_sqlite_idioms():
    assert translate("select * from reads where plate GLOB :p and note = 'a?b:c 5%' and x = ?") == (
        "select * from reads where plate LIKE alprd_glob(%(p)s) and note = 'a?b:c 5%%' and x = %s")
    assert "jsonb_array_elements_text(CAST(%s AS jsonb))" in translate("select value from json_each(?)")


def test_units_and_a_server_killed_mid_write_store_every_read_exactly_once(tmp_path, broker, pg_url):
    server_cmd = [*ALPRD, "-c", str(server_config_file(tmp_path / "dept", pg_url, broker.port)), "server",
                  "--client-id", "dept-1"]
    server = subprocess.Popen(server_cmd, stderr=subprocess.DEVNULL)
    fleet = PgStore(pg_url, tmp_path / "dept" / "audit.key")
    ids: list[str] = []
    uploads = []
    try:
        for device in ("car1", "car2", "car3"):
            d = tmp_path / device
            d.mkdir()
            unit = Store(d / "alprd.db")
            ids += unit_reads(unit, device, 400)
            unit.close()
            uploads.append([*ALPRD, "-c", str(unit_config_file(d, device, broker.port)), "upload", "--drain"])
        procs = [subprocess.Popen(cmd, stderr=subprocess.DEVNULL) for cmd in uploads]
        wait_until(lambda: fleet_counts(fleet)[0] >= 150, timeout=60, what="uploads under way")
        procs[1].send_signal(signal.SIGKILL)  # a unit dies mid-batch
        server.send_signal(signal.SIGKILL)  # and the server mid-write
        server.wait(10)
        procs[1].wait(10)
        assert fleet_counts(fleet)[0] < len(ids), "the kills must land mid-upload for this test to mean anything"
        server = subprocess.Popen(server_cmd, stderr=subprocess.DEVNULL)
        procs[1] = subprocess.Popen(uploads[1], stderr=subprocess.DEVNULL)
        for proc in procs:
            assert proc.wait(120) == 0
        assert fleet_counts(fleet) == (len(ids), len(ids))
        assert {r["id"] for r in fleet.query("select id from reads")} == set(ids)
        per_unit = {r["device_id"]: r["n"] for r in fleet.query(
            "select device_id, count(*) as n from reads group by device_id")}
        assert per_unit == {"car1": 400, "car2": 400, "car3": 400}
        # the department's rules on the department's data: a partial plate found fleet-wide, held reads
        # survive the department's purge, the access log checks out
        found = search(fleet, SearchQuery(plate="*AB0399"))
        assert sorted((r["plate"], r["device_id"]) for r in found) == [
            ("1AB0399", "car1"), ("2AB0399", "car2"), ("3AB0399", "car3")]
        assert [r["plate"] for r in search(fleet, SearchQuery(plate="*AB0399", device="car2"))] == ["2AB0399"]
        assert purge(fleet, 1).deleted == 0  # nothing is past the department's retention yet
        assert AccessLog(fleet).verify() == []
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        fleet.close()


def test_alerts_dispositions_and_bolos_reach_the_fleet_database_once_each(tmp_path, broker, store, pg_url):
    fleet = PgStore(pg_url, tmp_path / "audit.key")
    ingest = Ingest(uplink_config(tmp_path, broker.port).uplink, FleetStore(fleet), "dept-test")
    ingest.start()
    config = uplink_config(tmp_path, broker.port)
    try:
        wait_until(lambda: ingest.link.connected, what="server connected")
        alert_id = add_alert(store, unit_reads(store, "car7", 1)[0])  # the alert before its read: both kept
        assert set_disposition(store, alert_id, Disposition.MISREAD, "off1", "was ABC0008")
        assert set_disposition(store, alert_id, Disposition.CONFIRMED, "off1")
        repository.add_officer_entry(store, Entry("XY?9*", "bolo", priority=2, case_number="CFS-2026-90",
                                                  expires="2099-01-31", officer_entered=True), "off1")
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: not store.query("select 1 from bolo_uploads where uploaded_at is null")
                       and not store.query("select 1 from alert_dispositions where uploaded_at is null")
                       and store.backlog()[0] == 0, what="everything receipted")
            running.resend_dispositions(store)
        finally:
            running.stop()
    finally:
        ingest.stop()
    history = fleet.query('select disposition, note, "user" from alert_dispositions order by ts')
    assert [tuple(r.values()) for r in history] == [("misread", "was ABC0008", "off1"), ("confirmed", "", "off1")]
    (alert,) = fleet.query("select device_id, plate, disposition, disposition_by from alerts")
    assert alert == {"device_id": "car7", "plate": "ABC0000", "disposition": "confirmed", "disposition_by": "off1"}
    (bolo,) = fleet.query("select id, plate, case_number, priority, entered_by from bolo_uploads")
    assert {k: v for k, v in bolo.items() if k != "id"} == {
        "plate": "XY?9*", "case_number": "CFS-2026-90", "priority": 2, "entered_by": "off1"}
    # shared with the fleet through the department's list (the next publish carries it)
    result, change = share_bolos(fleet, received_bolos(fleet, [bolo["id"]]), HotlistConfig())
    assert [e.pattern for e in result.entries] == ["XY?9*"] and change.version == 1
    assert [r["pattern"] for r in repository.list_entries(fleet, officer_only=False)] == ["XY?9*"]
    with pytest.raises(ValueError, match="no BOLO uploaded with id nope"):
        received_bolos(fleet, ["nope"])
    fleet.close()


def test_alert_rows_come_from_the_payload_and_survive_a_bare_one():
    payload = json.dumps({"read_id": "r1", "plate": "ABC123", "seen_at": "2026-01-01T00:00:00.000000Z",
                          "match": {"kind": "look-alike", "pattern": "ABC12B", "category": "stolen", "priority": 1}})
    row = alert_row("a1", "car1", payload, "2026-01-01T00:00:01.000000Z")
    assert (row["read_id"], row["match_kind"], row["pattern"], row["category"], row["priority"]) == (
        "r1", "look-alike", "ABC12B", "stolen", 1)
    assert alert_row("a2", "car1", "[]", "t")["plate"] is None


def test_a_wrong_database_address_is_one_clear_line(tmp_path, capsys):
    config = make_config(tmp_path, store={"database": "postgresql://alprd@/nodb?host=/nonexistent"})
    with pytest.raises(Exception, match="cannot connect to PostgreSQL") as err:
        open_store(config.store)
    assert "PGPASSWORD" in str(err.value)
    proc = subprocess.run([*ALPRD, "-c", str(server_config_file(tmp_path / "d", config.store.database, 1)),
                           "server"], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "cannot connect to PostgreSQL" in proc.stderr and "Traceback" not in proc.stderr


def test_two_servers_share_one_database_and_the_units_uploads(tmp_path, broker, store, pg_url):
    """Scale-out: two servers in one $share group on one PostgreSQL; each batch stored once, by one of them."""
    config = uplink_config(tmp_path, broker.port, batch_size=5)
    fleets = [PgStore(pg_url, tmp_path / "audit.key") for _ in range(2)]
    servers = [Ingest(config.uplink, FleetStore(f), f"dept-{i}", shared_group="dept") for i, f in enumerate(fleets)]
    for s in servers:
        s.start()
    try:
        wait_until(lambda: all(s.link.connected for s in servers), what="servers connected")
        ids = unit_reads(store, "car7", 100)
        running = Running(Uploader(config, store))
        try:
            wait_until(lambda: store.backlog()[0] == 0, what="every read receipted")
        finally:
            running.stop()
    finally:
        for s in servers:
            s.stop()
    assert fleet_counts(fleets[0]) == (100, 100)
    assert {r["id"] for r in fleets[1].query("select id from reads")} == set(ids)
    assert all(s.stats["reads_new"] for s in servers), "both servers took a share"
    assert sum(s.stats["reads_new"] for s in servers) == 100
    for f in fleets:
        f.close()
