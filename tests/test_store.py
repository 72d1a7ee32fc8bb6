import os
import sqlite3

import pytest

from alprd import store as store_mod
from alprd.records import Read, from_columns
from alprd.store import MIGRATIONS, PERSONAL_DATA_COLUMNS, Store, StoreError


def make_read(plate="ABC1234", **kw) -> Read:
    return Read(plate=plate, confidence=0.93, char_confidences=(0.9, 0.95), camera_id="cam0",
                device_id="unit1", **kw)


def test_new_database_is_at_latest_version_in_wal_mode(tmp_path):
    s = Store(tmp_path / "a.db")
    assert s.schema_version == len(MIGRATIONS)
    assert s.db.journal_mode == "wal"
    for table in ("reads", "alerts", "hotlist", "users", "access_log", "evidence_holds",
                  "release_requests"):
        assert table in s.db.table_names()


def test_no_column_for_personal_data(store):
    for table, cols in store.columns().items():
        bad = PERSONAL_DATA_COLUMNS & {c.lower() for c in cols}
        assert not bad, f"{table} has personal-data columns {bad}"


def test_forward_migration_of_an_older_database(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS[:1])
    old = Store(path)
    old_columns = old.columns()["reads"]  # a read as the first schema held it
    old.db["reads"].insert({k: v for k, v in make_read().to_row().items() if k in old_columns})
    assert old.schema_version == 1
    old.close()

    def add_column(db):
        db["reads"].add_column("lane", str)

    monkeypatch.setattr(store_mod, "MIGRATIONS", [*MIGRATIONS, ("test_9999_lane", add_column)])
    new = Store(path)
    assert new.schema_version == len(MIGRATIONS) + 1
    assert "lane" in new.columns()["reads"]
    assert new.count_reads() == 1  # data survives the migration
    (read,) = new.query("select id from reads")
    assert from_columns(new.get_read(read["id"]))["candidates"] == []  # a field added later reads as empty
    new.close()
    again = Store(path)  # idempotent: nothing re-applied
    assert again.schema_version == len(MIGRATIONS) + 1


def test_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("insert into schema_migrations values ('zzz_9999_future', '2030-01-01')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer version"):
        Store(path)


def test_garbage_file_gives_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="move the file aside"):
        Store(path)


def test_read_round_trip_and_upload_state(store):
    r = make_read(box=(1, 2, 30, 40), lat=39.7, lon=-104.9, crop_jpeg=b"\xff\xd8jpeg")
    store.insert_read(r)
    row = store.get_read(r.id)
    assert row["plate"] == "ABC1234" and row["lat"] == 39.7 and row["crop_jpeg"] == b"\xff\xd8jpeg"
    assert row["char_confidences"] == "[0.9, 0.95]"
    assert store.backlog() == (1, r.ts)
    assert [p["id"] for p in store.pending_reads(10)] == [r.id]
    store.mark_uploaded([r.id])
    assert store.pending_reads(10) == [] and store.backlog() == (0, None)
    assert store.get_read(r.id)["uploaded_at"] is not None


def test_read_is_durable_once_insert_returns(tmp_path):
    path = tmp_path / "d.db"
    s = Store(path)
    r = make_read()
    s.insert_read(r)
    # another connection (another process after a crash) sees it at once
    conn = sqlite3.connect(path)
    assert conn.execute("select plate from reads where id = ?", (r.id,)).fetchone() == ("ABC1234",)


def test_transaction_rolls_back_every_statement(store):
    try:
        with store.transaction() as db:
            db.execute("insert into hotlist (pattern, category) values ('AAA111', 'stolen_vehicle')")
            db["hotlist"].insert({"pattern": "BBB222", "category": "stolen_vehicle"})
            raise RuntimeError("power cut")
    except RuntimeError:
        pass
    assert store.query("select count(*) as n from hotlist")[0]["n"] == 0
    with store.transaction() as db:
        db.execute("insert into hotlist (pattern, category) values ('AAA111', 'stolen_vehicle')")
        with store.transaction():  # nested joins the outer transaction
            db["hotlist"].insert({"pattern": "BBB222", "category": "stolen_vehicle"})
    assert store.query("select count(*) as n from hotlist")[0]["n"] == 2


def test_database_and_wal_files_are_private_whatever_the_umask(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "new.db"
        store = Store(path)
        store.insert_read(Read("ABC123", 0.9, (0.9,) * 6, "cam0", "dev1"))
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.glob("new.db*")}
        store.close()
        assert modes == {"new.db": 0o600, "new.db-wal": 0o600, "new.db-shm": 0o600}
        path.chmod(0o644)  # a database made by an older alprd
        Store(path).close()
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old_umask)


def test_context_image_and_disposition_history_go_with_their_read(tmp_path):
    from alprd.hotlist.alerts import Disposition, disposition_history, set_disposition

    s = Store(tmp_path / "c.db")
    r = Read("ABC123", 0.9, [0.9] * 6, "cam0", "dev")
    s.insert_read(r, b"\xff\xd8context")
    assert s.read_context(r.id) == b"\xff\xd8context"
    with s.transaction() as db:
        db["alerts"].insert({"id": "a1", "read_id": r.id, "plate": "ABC123", "ts": r.ts})
    assert set_disposition(s, "a1", Disposition.MISREAD, "off1", "was ABC128")
    assert set_disposition(s, "a1", Disposition.WRONG_STATE, "off1")
    assert not set_disposition(s, "nosuch", Disposition.NO_ACTION, "off1")
    history = disposition_history(s, "a1")
    assert [h["disposition"] for h in history] == ["misread", "wrong_state"]  # a change is a new entry
    assert s.query("select disposition from alerts")[0]["disposition"] == "wrong_state"
    with pytest.raises(sqlite3.IntegrityError, match="history"), s.transaction() as db:
        db.execute("update alert_dispositions set disposition = 'confirmed'")
    with s.transaction() as db:  # the purge deletes a read with its alert: both go along
        db.execute("delete from alerts")
        db.execute("delete from reads")
    assert s.read_context(r.id) is None and not disposition_history(s, "a1")
