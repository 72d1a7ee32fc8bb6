"""The asyncio pipeline with real SQLite and fake (instant or slow) models."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_config
from fakes import draw_marked_plate, fake_reader

from alprd.capture import Frame
from alprd.daemon import Daemon
from alprd.store import Store


class ScriptedSource:
    """Frames drawn from a script: frame i shows the plates listed at position i."""

    def __init__(self, script, fps=30.0, realtime=False):
        self.script = script
        self.fps = fps
        self.realtime = self.live = realtime
        self.i = 0
        self.closed = False

    def open(self):
        pass

    def read(self):
        if self.i >= len(self.script):
            return None
        if self.realtime:
            time.sleep(1 / self.fps)
        image = np.zeros((120, 320, 3), np.uint8)
        for k, (text, conf) in enumerate(self.script[self.i]):
            draw_marked_plate(image, text, 10 + 100 * k, 50, conf)
        f = Frame(image, self.i, self.i / self.fps)
        self.i += 1
        return f

    def close(self):
        self.closed = True


def run(daemon):
    return asyncio.run(daemon.run(install_signals=False))


def test_plate_in_consecutive_frames_is_one_read_with_best_crop(tmp_path):
    script = [[("ABC123", 0.6)], [("ABC123", 0.9)], [("ABC123", 0.7)]] + [[]] * 40 + [[("XYZ789", 0.8)]]
    cfg = make_config(tmp_path)
    store = Store(cfg.store.path)
    d = Daemon(cfg, store, fake_reader(), ScriptedSource(script))
    seen = []
    d.on_read(lambda r: seen.append((r.plate, store.get_read(r.id) is not None)))
    stats = run(d)
    rows = store.query("select plate, confidence, frames, crop_jpeg from reads order by ts")
    assert [(r["plate"], r["frames"]) for r in rows] == [("ABC123", 3), ("XYZ789", 1)]
    assert abs(rows[0]["confidence"] - 0.9) < 0.01  # the best sighting was kept
    assert rows[0]["crop_jpeg"][:2] == b"\xff\xd8"  # a JPEG crop
    assert seen == [("ABC123", True), ("XYZ789", True)]  # committed before listeners ran
    assert stats.reads == 2 and stats.frames_dropped == 0


def test_slow_inference_drops_oldest_frames_and_memory_stays_bounded(tmp_path):
    cfg = make_config(tmp_path, pipeline={"frame_queue": 2})
    store = Store(cfg.store.path)
    script = [[("ABC123", 0.9)]] * 60
    reader = fake_reader(delay_s=0.05)  # 20 fps of inference against a 200 fps camera
    d = Daemon(cfg, store, reader, ScriptedSource(script, fps=200, realtime=True))
    max_queue = []
    original_offer = d._offer

    def spy(queue, item):
        original_offer(queue, item)
        max_queue.append(queue.qsize())

    d._offer = spy
    stats = run(d)
    assert stats.frames_captured == 60
    assert stats.frames_dropped > 20
    assert stats.frames_processed + stats.frames_dropped == 60
    assert max(max_queue) <= 2
    assert reader.detector.calls == stats.frames_processed
    assert store.count_reads() == 1  # still one read of the one plate


def test_stop_request_drains_and_flushes_open_tracks(tmp_path):
    cfg = make_config(tmp_path)
    store = Store(cfg.store.path)
    script = [[("ABC123", 0.9), ("XYZ789", 0.8)]] * 10000  # a car that never leaves
    d = Daemon(cfg, store, fake_reader(), ScriptedSource(script, fps=100, realtime=True))

    async def main():
        task = asyncio.create_task(d.run(install_signals=False))
        await asyncio.sleep(0.5)
        d.request_stop()
        return await asyncio.wait_for(task, 10)

    stats = asyncio.run(main())
    assert d.source.closed
    assert stats.frames_processed > 0
    assert sorted(r["plate"] for r in store.query("select plate from reads")) == ["ABC123", "XYZ789"]


def test_bad_frame_is_skipped_not_fatal(tmp_path):
    cfg = make_config(tmp_path)
    store = Store(cfg.store.path)
    reader = fake_reader()
    calls = {"n": 0}
    real_detect = reader.detector.detect

    def flaky(image):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("corrupt frame")
        return real_detect(image)

    reader.detector.detect = flaky
    d = Daemon(cfg, store, reader, ScriptedSource([[("ABC123", 0.9)]] * 5))
    stats = run(d)
    assert stats.frames_processed == 5 and store.count_reads() == 1


def test_sigterm_drains_and_exits_cleanly(tmp_path):
    """A real process gets SIGTERM mid-stream; every plate seen so far is in the database."""
    tests_dir = Path(__file__).parent
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(tests_dir)!r})
        from test_pipeline import ScriptedSource
        from fakes import fake_reader
        from conftest import make_config
        from pathlib import Path
        from alprd.daemon import Daemon
        from alprd.store import Store
        cfg = make_config(Path({str(tmp_path)!r}))
        import random
        rnd = random.Random(1)
        texts = ["".join(rnd.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(7)) for _ in range(5000)]
        plates = [[(texts[i // 10], 0.9)] for i in range(50000)]
        d = Daemon(cfg, Store(cfg.store.path), fake_reader(), ScriptedSource(plates, fps=200, realtime=True))
        d.on_read(lambda r: print("READ", r.plate, flush=True))
        print("READY", flush=True)
        stats = asyncio.run(d.run())
        print("STOPPED", stats.reads, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().strip() == "READY"
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert lines[-1].startswith("STOPPED")
    reported = int(lines[-1].split()[1])
    store = Store(tmp_path / "alprd.db")
    plates = {r["plate"] for r in store.query("select plate from reads")}
    assert reported == len(plates) > 3
    # the plate in view at the moment of SIGTERM was flushed, not lost
    assert {line.split()[1] for line in lines if line.startswith("READ")} == plates


def test_a_pass_is_stored_fused_with_its_candidates(tmp_path):
    # the most confident frame misreads B as 8; the pass is stored as the frames voted
    script = [[("ABC123", 0.7)], [("A8C123", 0.9)], [("ABC123", 0.8)]] + [[]] * 40
    cfg = make_config(tmp_path)
    store = Store(cfg.store.path)
    run(Daemon(cfg, store, fake_reader(), ScriptedSource(script)))
    (row,) = store.query("select plate, candidates, candidate_scores, frames from reads")
    assert row["plate"] == "ABC123" and row["frames"] == 3
    assert json.loads(row["candidates"]) == ["ABC123", "A8C123"]
    scores = json.loads(row["candidate_scores"])
    assert scores[0] == pytest.approx(0.5, abs=0.01) and scores[1] == pytest.approx(0.3, abs=0.01)
