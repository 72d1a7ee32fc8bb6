"""GPS: NMEA parsing (pure) and the real serial reader on a pseudo-terminal receiver."""

from __future__ import annotations

import asyncio

import pytest
from conftest import make_config
from hardware_fakes import (
    GGA,
    GGA_NO_FIX,
    GSV,
    RMC,
    RMC_NO_FIX,
    VTG,
    FakeReader,
    PtyGps,
    drive_log,
    nmea,
    wait_for,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from alprd.app import build_daemon
from alprd.capture import SyntheticSource
from alprd.config import GpsConfig
from alprd.gps import Fix
from alprd.gps.nmea import LineAssembler, NmeaTracker
from alprd.gps.serial_reader import SerialGps


def feed(tracker: NmeaTracker, *lines: str, now: float = 100.0) -> list[bool]:
    return [tracker.feed_line(line, now) for line in lines]


def test_rmc_gga_vtg_build_a_full_fix():
    t = NmeaTracker()
    assert feed(t, RMC, GGA, VTG, GSV) == [True] * 4
    fix = t.fix
    assert fix is not None
    assert fix.lat == pytest.approx(48.1173, abs=1e-4) and fix.lon == pytest.approx(11.51670, abs=1e-4)
    assert fix.utc == "1994-03-23T12:35:20.000000Z"  # GGA time on the RMC date
    assert fix.speed_kmh == pytest.approx(22.4 * 1.852, abs=0.01)
    assert (fix.quality, fix.satellites, fix.hdop) == (1, 8, 0.9)
    feed(t, VTG, RMC)
    assert t.fix.speed_kmh == pytest.approx(41.48, abs=0.01)  # RMC knots replace VTG's km/h
    assert t.fix.heading_deg == 84.4
    assert t.counters.sentences == 5 and t.counters.other == 1 and t.counters.garbage == 0


def test_corrupt_and_unchecked_sentences_are_counted_and_skipped():
    t = NmeaTracker()
    bad_checksum = RMC[:-2] + ("00" if not RMC.endswith("00") else "01")
    no_checksum = RMC.split("*")[0]
    flipped = RMC.replace("4807.038", "4807.03B")  # a bit flip the checksum catches
    bad_number = nmea("GPRMC,123519,A,48x7.038,N,01131.000,E,022.4,084.4,230394,003.1,W")
    assert feed(t, bad_checksum, no_checksum, flipped, bad_number, "hello", "$GPGGA,1,2") == [False] * 6
    assert t.fix is None and t.counters.garbage == 6


@pytest.mark.parametrize("body, reason", [
    ("GPRMC,123519,A,4807.038,,01131.000,E,022.4,084.4,230394,003.1,W", "latitude without hemisphere"),
    ("GPGGA,123520,4807.040,N,01131.002,,1,08,0.9,545.4,M,46.9,M,,", "longitude without hemisphere"),
    ("GPRMC,123519,A,4807.038,N,01131.000,E,nan,084.4,230394,003.1,W", "speed out of range"),
    ("GPRMC,123519,A,4807.038,N,01131.000,E,inf,084.4,230394,003.1,W", "speed out of range"),
    ("GPRMC,123519,A,4807.038,N,01131.000,E,-3.0,084.4,230394,003.1,W", "speed out of range"),
    ("GPVTG,084.4,T,034.4,M,022.4,N,-41.5,K", "speed out of range"),
    ("GPVTG,nan,T,034.4,M,022.4,N,41.5,K", "course out of range"),
    ("GPGGA,123520,4807.040,N,01131.002,E,1,08,inf,545.4,M,46.9,M,,", "hdop out of range"),
    ("GPRMC,123519,A,4860.000,N,01131.000,E,022.4,084.4,230394,003.1,W", "latitude minutes >= 60"),
    ("GPRMC,123519,A,4807.038,N,01175.000,E,022.4,084.4,230394,003.1,W", "longitude minutes >= 60"),
    ("GPRMC,123519,A,9100.000,N,01131.000,E,022.4,084.4,230394,003.1,W", "latitude beyond 90"),
    ("GPRMC,123519,A,4807.038,N,18100.000,E,022.4,084.4,230394,003.1,W", "longitude beyond 180"),
    ("GPRMC,123519,A,48.07038,N,01131.000,E,022.4,084.4,230394,003.1,W", "latitude not ddmm.mmmm"),
])
def test_impossible_values_are_rejected_by_reason_and_keep_the_last_fix(body, reason):
    t = NmeaTracker()
    assert feed(t, RMC) == [True]
    before = t.fix
    assert feed(t, nmea(body)) == [False]
    assert t.fix == before and t.fix.lat > 48 and t.fix.lon > 11
    assert t.counters.rejected == {reason: 1} and t.counters.garbage == 1


def test_southern_and_western_positions_are_negative():
    t = NmeaTracker()
    feed(t, nmea("GPRMC,123519,A,3352.500,S,15112.750,W,0.0,,230394,,"))
    assert (t.fix.lat, t.fix.lon) == (pytest.approx(-33.875), pytest.approx(-151.2125))


def test_lost_fix_keeps_last_position_which_then_goes_stale():
    t = NmeaTracker()
    feed(t, RMC, GGA, now=100.0)
    assert t.has_fix
    feed(t, RMC_NO_FIX, GGA_NO_FIX, now=103.0)
    assert not t.has_fix and t.fix.measured_at == 100.0
    assert not t.fix.is_stale(5.0, now=104.0)
    assert t.fix.is_stale(5.0, now=106.0)
    assert t.fix.describe(5.0, now=106.0)["state"] == "stale"


def test_assembler_drops_a_sentence_cut_by_a_new_one():
    a = LineAssembler()
    lines = a.feed(b"$GPRMC,1235$GPGGA,1\r\n" + b"x" * 500 + b"\n$GPVTG")
    assert lines == ["$GPGGA,1"]
    assert a.dropped == 2  # the cut RMC and the overlong noise
    assert a.feed(b",1*00\r\n") == ["$GPVTG,1*00"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_assembler_gives_the_same_lines_however_the_bytes_are_split(cuts):
    stream = ("\r\n".join([RMC, GGA, VTG, GSV] * 3) + "\r\n").encode()
    whole = LineAssembler().feed(stream)
    a, pos, got = LineAssembler(), 0, []
    for cut in cuts * (len(stream) // sum(cuts) + 1):
        got += a.feed(stream[pos:pos + cut])
        pos += cut
    assert got == whole == [RMC, GGA, VTG, GSV] * 3


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_and_never_make_a_fix(noise):
    a, t = LineAssembler(), NmeaTracker()
    for line in a.feed(noise + b"\r\n"):
        t.feed_line(line, 1.0)
    assert t.fix is None


def test_a_drive_gives_the_true_track():
    lines, truth = drive_log(seconds=5)
    t = NmeaTracker()
    for i, line in enumerate(lines):
        assert t.feed_line(line, float(i))
    assert (t.fix.lat, t.fix.lon) == pytest.approx(truth[-1], abs=1e-6)
    assert t.fix.speed_kmh == pytest.approx(54.0, abs=0.01) and t.fix.heading_deg == 90.0
    assert t.fix.utc == "2026-11-28T04:00:04.000000Z" and t.fix.satellites == 9
    assert t.counters.by_type == {"RMC": 5, "VTG": 5, "GGA": 5} and t.counters.other == 16


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_cut_sentences_anywhere_in_a_drive_are_skipped(data):
    """Sentences cut short (a dropout) count as garbage; the fix is the last intact one."""
    lines, truth = drive_log(seconds=6)
    cut = data.draw(st.sets(st.integers(1, len(lines) - 1), max_size=12))
    stream = b""
    for i, line in enumerate(lines):
        if i in cut:
            keep = data.draw(st.integers(1, len(line) - 1))
            ending = data.draw(st.sampled_from(["\r\n", ""]))  # cut then newline, or run into the next
            stream += (line[:keep] + ending).encode()
        else:
            stream += (line + "\r\n").encode()
    a, t = LineAssembler(), NmeaTracker()
    for line in a.feed(stream + b"\r\n"):  # the receiver goes on talking after the last cut
        t.feed_line(line, 1.0)
    assert t.counters.garbage + a.dropped == len(cut)
    intact_fix_lines = [i for i in range(len(lines)) if i not in cut and lines[i][3:6] in ("RMC", "GGA")]
    last_second = (intact_fix_lines[-1] - 1) // 6 if intact_fix_lines else None
    if last_second is None:
        assert t.fix is None
    else:
        assert (t.fix.lat, t.fix.lon) == pytest.approx(truth[last_second], abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(RMC) - 1), st.characters(min_codepoint=32, max_codepoint=126))
def test_any_single_character_change_is_rejected_or_harmless(pos, char):
    mutated = RMC[:pos] + char + RMC[pos + 1:]
    t = NmeaTracker()
    if t.feed_line(mutated, 1.0) and t.fix is not None:
        assert -90 <= t.fix.lat <= 90 and -180 <= t.fix.lon <= 180


# -- the serial reader on a pseudo-terminal ------------------------------------

@pytest.fixture
def receiver(tmp_path):
    gps = PtyGps(tmp_path / "gps0")
    yield gps
    gps.close()


def test_serial_reader_survives_garbage_and_unplugging(receiver):
    cfg = GpsConfig(mode="serial", port=str(receiver.link), max_fix_age_s=5, reopen_backoff_max_s=0.5)
    reader = SerialGps(cfg)
    reader.start()
    try:
        wait_for(lambda: reader.connected, what="port open")
        receiver.write(RMC[:20], raw=b"\x00\xff garbage")  # a partial line, then noise
        receiver.write("", GGA, "$GPRMC,bad*00", RMC, VTG)
        wait_for(lambda: reader.status()["sentences"] >= 3, what="3 sentences")
        st_ = reader.status()
        assert st_["connected"] and st_["fix"]["state"] == "current"
        assert st_["satellites"] == 8 and st_["garbage"] >= 2
        assert st_["rejected"]["bad checksum"] >= 1  # "$GPRMC,bad*00"
        fix = reader.current()
        assert isinstance(fix, Fix) and fix.lat == pytest.approx(48.1173, abs=1e-3)

        receiver.unplug()
        wait_for(lambda: not reader.connected, what="unplug noticed")
        assert reader.status()["last_error"]
        assert reader.current() == fix  # last position kept, ageing

        receiver.plug()
        wait_for(lambda: reader.connected, what="reopen after replug")
        assert reader.opens == 2
        receiver.write(nmea("GPRMC,123600,A,4900.000,N,01200.000,E,000.0,,230394,,"))
        wait_for(lambda: reader.current().lat == pytest.approx(49.0), what="new fix")
    finally:
        reader.stop()
    assert not reader._thread.is_alive()


def test_reader_replays_a_drive_with_corrupt_lines_through_the_port(receiver):
    lines, truth = drive_log(seconds=20)
    lines[61] = lines[61][:25]  # second 10's RMC: a dropout
    lines[63] = lines[63].replace(",1,09,", ",1,08,")  # its GGA: a changed digit
    reader = SerialGps(GpsConfig(mode="serial", port=str(receiver.link)))
    reader.start()
    try:
        wait_for(lambda: reader.connected, what="port open")
        for second in range(0, len(lines), 12):  # the receiver's output arrives in bursts
            receiver.write(*lines[second:second + 12])
        wait_for(lambda: reader.status()["sentences"] + reader.status()["garbage"] >= 60, what="all lines")
        st_ = reader.status()
    finally:
        reader.stop()
    assert st_["sentences"] == 58 and st_["garbage"] == 2
    assert (st_["fix"]["lat"], st_["fix"]["lon"]) == pytest.approx(truth[-1], abs=1e-6)


def test_port_in_use_is_named(receiver):
    cfg = GpsConfig(mode="serial", port=str(receiver.link))
    first, second = SerialGps(cfg), SerialGps(cfg)
    first.start()
    try:
        wait_for(lambda: first.connected, what="first reader open")
        second.start()
        wait_for(lambda: second.last_error, what="second refused")
        second.stop()
    finally:
        first.stop()
    assert "in use" in second.status()["last_error"] and "systemctl stop alprd" in second.status()["hint"]


def test_missing_port_is_reported_with_the_fix(tmp_path):
    reader = SerialGps(GpsConfig(mode="serial", port=str(tmp_path / "nope"), reopen_backoff_max_s=0.2))
    reader.start()
    try:
        wait_for(lambda: reader.last_error, what="error")
    finally:
        reader.stop()
    assert "no device" in reader.status()["last_error"] and not reader.status()["connected"]


def test_daemon_stamps_reads_with_the_serial_fix(tmp_path, receiver):
    cfg = make_config(tmp_path, gps={"mode": "serial", "port": str(receiver.link)},
                      camera={"frames": 40, "realtime": True, "fps": 40, "width": 320, "height": 240})
    daemon = build_daemon(cfg, source=SyntheticSource(cfg.camera), reader=FakeReader())

    async def main():
        task = asyncio.create_task(daemon.run(install_signals=False))
        await asyncio.to_thread(wait_for, lambda: daemon.status()["gps"]["connected"], 5, "gps open")
        receiver.write(RMC, GGA)
        await task

    asyncio.run(main())
    rows = daemon.store.query("select lat, gps_stale from reads")
    assert rows and rows[-1]["lat"] == pytest.approx(48.1173, abs=1e-3) and rows[-1]["gps_stale"] == 0
    daemon.store.close()


def test_reads_after_the_receiver_goes_quiet_are_marked_stale(tmp_path, receiver):
    cfg = make_config(tmp_path, gps={"mode": "serial", "port": str(receiver.link), "max_fix_age_s": 0.2},
                      camera={"frames": 45, "realtime": True, "fps": 30, "width": 320, "height": 240})
    daemon = build_daemon(cfg, source=SyntheticSource(cfg.camera), reader=FakeReader())

    async def main():
        task = asyncio.create_task(daemon.run(install_signals=False))
        await asyncio.to_thread(wait_for, lambda: daemon.status()["gps"]["connected"], 5, "gps open")
        receiver.write(RMC, GGA)  # one fix, then silence for the rest of the pass
        await task

    asyncio.run(main())
    [row] = daemon.store.query("select lat, gps_fix_ts, gps_stale from reads")
    assert row["lat"] == pytest.approx(48.1173, abs=1e-3) and row["gps_stale"] == 1
    assert row["gps_fix_ts"] == "1994-03-23T12:35:20.000000Z"  # the fix's own time, not the read's
    assert daemon.status()["gps"]["fix"]["state"] == "stale"
    daemon.store.close()
