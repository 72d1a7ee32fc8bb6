"""The shared records: one field list, derived from Read, used by the store, the wire and the receiver."""

from __future__ import annotations

from dataclasses import fields

from alprd.records import READ_FIELDS, Read, from_columns, to_columns
from alprd.uplink.ingest import IngestDB


def test_the_field_list_is_the_dataclass_and_every_table_holds_it(tmp_path, store):
    assert READ_FIELDS == tuple(f.name for f in fields(Read))
    assert set(READ_FIELDS) <= set(store.columns()["reads"])
    db = IngestDB(tmp_path / "dept.db")
    try:
        assert set(READ_FIELDS) <= {c.name for c in db.db["reads"].columns}
    finally:
        db.close()


def test_columns_round_trip_to_typed_values():
    read = Read("ABC123", 0.9, [0.9, 0.95], "cam0", "car7", box=[1, 2, 30, 12], gps_stale=True)
    row = read.to_row()
    assert row["char_confidences"] == "[0.9, 0.95]" and row["box"] == "[1, 2, 30, 12]" and row["gps_stale"] == 1
    values = from_columns(row)
    assert values["char_confidences"] == [0.9, 0.95] and values["box"] == [1, 2, 30, 12]
    assert values["gps_stale"] is True
    assert to_columns(values) == {k: row[k] for k in READ_FIELDS}
