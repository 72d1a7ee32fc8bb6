"""`alprd demo` end to end: synthetic camera, the shipped ONNX models, real SQLite."""

from alprd.cli import main
from alprd.store import Store


def test_demo_reads_plates_into_the_database(tmp_path, capsys):
    state = tmp_path / "demo"
    assert main(["demo", "--frames", "60", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "summary" in out and "frames: 60 captured" in out
    store = Store(state / "alprd.db")
    reads = store.query("select plate, confidence, crop_jpeg, uploaded_at from reads")
    assert reads, "the demo stored no read"
    assert all(r["crop_jpeg"] and r["uploaded_at"] is None for r in reads)  # waiting for a broker
    shown = int(out.split("plates shown ")[1].split(",")[0])
    exact = int(out.split("read exactly ")[1].split()[0])
    assert shown == 3 and exact >= 2, out
    for r in reads:  # each read was printed as it happened
        assert r["plate"] in out
