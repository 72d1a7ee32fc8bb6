"""Uplink benchmark: reads/s end to end and bytes per read on the wire.

Fills a real SQLite buffer with reads carrying realistic plate crops (synthetic
plates, JPEG at the daemon's default quality), starts a local Mosquitto broker
on a free loopback port, and times the real uploader (batches at QoS 1, marked
on acknowledgement) until the reference receiver (`alprd ingest`) has
committed every read to its own SQLite database. A quarter of the way in an
alert is stored: how long it takes to reach the receiver past the backlog.
Both ends run in this process, so on a small machine they share its cores.

    .venv/bin/python scripts/bench_uplink.py [--reads 20000] [--batch-size 100] [--inflight 4]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import Broker  # the tests' broker: same config, same cleanup

from alprd.config import config_from_dict
from alprd.log import setup_logging
from alprd.records import Read, utc_now
from alprd.store import Store
from alprd.synth import random_plate_text, render_plate
from alprd.uplink.ingest import Ingest, IngestDB
from alprd.uplink.uploader import Uploader


def make_reads(n: int, device: str, seed: int = 7) -> list[Read]:
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(512):  # more distinct crops than a batch holds: gzip gets no repeats
        plate = render_plate(random_plate_text(rng), rng, height=int(rng.integers(40, 72)))
        noisy = np.clip(plate + rng.normal(0, 6, plate.shape), 0, 255).astype(np.uint8)
        crops.append(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return [Read(random_plate_text(rng), float(rng.uniform(0.6, 1)), tuple(rng.uniform(0.6, 1, 7)), "cam0",
                 device, lat=39.7 + rng.normal(0, 0.01), lon=-104.9 + rng.normal(0, 0.01), speed_kmh=42.0,
                 heading_deg=90.0, box=(800, 600, 950, 650), frames=int(rng.integers(1, 9)),
                 crop_jpeg=crops[i % len(crops)]) for i in range(n)]


async def upload(uploader: Uploader, ingest: Ingest, store: Store, n: int) -> tuple[float, float, int]:
    """Seconds for all reads; and an alert raised mid-backlog: its latency, and reads still waiting then."""
    stop = asyncio.Event()
    t0 = time.perf_counter()
    task = asyncio.create_task(uploader.run(stop))
    while ingest.db.count("reads") < n // 4:
        await asyncio.sleep(0.02)
    waiting = store.backlog()[0]
    with store.transaction() as db:
        read_id = db.execute("select id from reads order by ts desc limit 1").fetchone()[0]
        db["alerts"].insert({"id": "bench-alert", "read_id": read_id, "plate": "BENCH1", "ts": utc_now(),
                             "payload": '{"alert_id": "bench-alert"}'})
    t_alert = time.perf_counter()
    uploader.notify_alert()
    alert_s = None
    while ingest.db.count("reads") < n:
        if alert_s is None and ingest.db.count("alerts"):
            alert_s = time.perf_counter() - t_alert
        await asyncio.sleep(0.002 if alert_s is None else 0.02)
    elapsed = time.perf_counter() - t0
    stop.set()
    await task
    return elapsed, alert_s if alert_s is not None else math.nan, waiting


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--inflight", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_uplink_") as tmp:
        work = Path(tmp)
        broker = Broker(work)
        broker.start()
        config = config_from_dict({
            "device": {"id": "bench-car"}, "store": {"state_dir": str(work)}, "logging": {"level": "warning"},
            "uplink": {"enabled": True, "port": broker.port, "batch_size": args.batch_size,
                       "max_inflight_batches": args.inflight, "batch_max_age_s": 0.1}})
        setup_logging(config.logging)
        store = Store(config.store.path)
        reads = make_reads(args.reads, config.device.id)
        with store.transaction() as db:
            db["reads"].insert_all([r.to_row() for r in reads], batch_size=500)
        ingest_db = IngestDB(work / "ingest.db")
        ingest = Ingest(config.uplink, ingest_db, "bench-ingest")
        ingest.start()
        try:
            while not ingest.link.connected:
                time.sleep(0.02)
            uploader = Uploader(config, store)
            elapsed, alert_s, waiting = asyncio.run(upload(uploader, ingest, store, args.reads))
        finally:
            ingest.stop()
            ingest_db.close()
            broker.stop()
        crop_bytes = sum(len(r.crop_jpeg or b"") for r in reads) / len(reads)
        print(f"reads uploaded end to end: {args.reads} in {elapsed:.2f} s = {args.reads / elapsed:,.0f} reads/s "
              f"(batch {args.batch_size}, {args.inflight} batches in flight, broker and receiver on this host)")
        print(f"on the wire: {uploader.bytes_sent / args.reads:,.0f} bytes/read (gzip JSON batch payload, "
              f"crop JPEG {crop_bytes:,.0f} bytes/read); {uploader.batches_acked} batches acknowledged")
        print(f"alert raised with {waiting:,} reads waiting: at the receiver after {alert_s * 1000:.0f} ms")
        print(f"backlog left in the vehicle buffer: {store.backlog()[0]}")
        store.close()


if __name__ == "__main__":
    main()
