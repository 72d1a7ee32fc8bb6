#!/usr/bin/env python3
"""The department database at fleet scale: ingest rate and search latency at 1, 10 (and 100) million reads.

A 50-car fleet reads about 100 million plates a year. At each size the fleet table is first filled in
bulk inside PostgreSQL (``INSERT ... SELECT generate_series``: a year of reads from 50 units, plates
AAA0000-ZZZ9999, positions around one city, without crops), then measured the way the server and
the policy commands use it:

* ingest: batches of 200 reads through ``FleetStore.add_batch`` (the server's own path: one
  transaction per batch, ON CONFLICT DO NOTHING, every index and trigger), reads/s;
* search: ``alprd.policy.search`` (the ``alprd search`` code) for an exact plate, a prefix, a partial
  plate (``*BC12*``, the trigram index), one hour fleet-wide, one unit's day and an area, median of
  repeated runs with different values (ms);
* size: ``pg_database_size`` (without crops; add about 2.7 kB per read for the crop a unit uploads).

Sizes not measured (``--extrapolate``, default 100 million) are extrapolated from the two largest
measured ones: ingest rate and index-backed search latency by the log of the table size (B-tree and
GIN depth grow with log n), the database size linearly.

    .venv/bin/python scripts/bench_server.py                         # a throwaway cluster, 1M and 10M
    .venv/bin/python scripts/bench_server.py --sizes 1000000 --database postgresql://alprd@/bench?host=/tmp
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from alprd.policy.search import SearchQuery, search
from alprd.records import READ_FIELDS, Read, utc_now
from alprd.server import FleetStore
from alprd.store.postgres import PgStore
from alprd.uplink.schema import Batch

UNITS = 50
YEAR_S = 365 * 86_400
START = "2026-01-01T00:00:00"

FILL = f"""
INSERT INTO reads (id, plate, confidence, char_confidences, ts, device_id, camera_id, frames, lat, lon,
                   gps_stale, uploaded_at, candidates, candidate_scores, region)
SELECT md5(i::text || 'alprd-bench'),
       chr(65 + mod(i * 7919 / 1000000, 26)::int) || chr(65 + mod(i * 7919 / 1000, 26)::int)
         || chr(65 + mod(i * 7919, 26)::int) || lpad(mod(i * 104729, 10000)::text, 4, '0'),
       0.9, '[0.9,0.9,0.9,0.9,0.9,0.9,0.9]', v.ts, 'car' || mod(i, {UNITS}), 'cam0', 3,
       45.4 + mod(i, 1000) * 0.0004, -73.7 + mod(i / 1000, 1000) * 0.0004, 0, v.ts, '[]', '[]', 'us'
FROM generate_series(%s::bigint, %s::bigint) AS i,
     LATERAL (SELECT to_char(timestamp '{START}' + mod(i * 2654435761, {YEAR_S}) * interval '1 second',
                             'YYYY-MM-DD"T"HH24:MI:SS".000000Z"') AS ts) AS v
"""


def fill_to(store: PgStore, have: int, target: int, step: int = 1_000_000) -> None:
    while have < target:
        n = min(step, target - have)
        t = time.perf_counter()
        store._raw.execute(FILL, [have + 1, have + n])
        have += n
        print(f"  filled {have:,} ({n / (time.perf_counter() - t):,.0f} rows/s in bulk)", flush=True)
    store._raw.execute("ANALYZE reads")


def ingest_rate(store: PgStore, batches: int = 25, size: int = 200) -> float:
    fleet = FleetStore(store)
    t = time.perf_counter()
    for b in range(batches):
        reads = [Read(f"QQ{b % 10}{i:04d}", 0.9, (0.9,) * 7, "cam0", f"car{b % UNITS}") for i in range(size)]
        rows = [{k: r.to_row()[k] for k in READ_FIELDS} for r in reads]
        fleet.add_batch(Batch(str(uuid.uuid4()), f"car{b % UNITS}", utc_now(), rows), utc_now())
    return batches * size / (time.perf_counter() - t)


def timed(store: PgStore, queries: list[SearchQuery]) -> float:
    times = []
    for q in queries:
        t = time.perf_counter()
        search(store, q)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def searches(store: PgStore) -> dict[str, float]:
    sample = "SELECT plate FROM reads TABLESAMPLE SYSTEM (0.01) LIMIT 7"
    plates = [r["plate"] for r in store.query(sample)] or ["AAA0000"]
    days = [f"2026-{m:02d}-{d:02d}" for m, d in ((2, 3), (4, 9), (6, 14), (8, 20), (10, 5), (11, 11), (12, 1))]
    return {
        "exact plate": timed(store, [SearchQuery(plate=p, limit=100) for p in plates]),
        "prefix ABC1*": timed(store, [SearchQuery(plate=p[:4] + "*", limit=100) for p in plates]),
        "partial *BC12*": timed(store, [SearchQuery(plate="*" + p[1:5] + "*", limit=100) for p in plates]),
        "one hour, fleet-wide": timed(store, [SearchQuery(since=f"{d}T10:00:00.000000Z", until=f"{d}T11:00:00.000000Z",
                                                          limit=10_000) for d in days]),
        "one unit, one day": timed(store, [SearchQuery(since=f"{d}T00:00:00.000000Z", until=f"{d}T23:59:59.999999Z",
                                                       device=f"car{i}", limit=10_000) for i, d in enumerate(days)]),
        "area 400 m x 400 m, one week": timed(store, [SearchQuery(box=(45.45, -73.65, 45.4536, -73.6449),
                                                                  since=f"{d}T00:00:00.000000Z",
                                                                  until=f"{d[:8]}{int(d[8:]) + 6:02d}T00:00:00.000000Z",
                                                                  limit=10_000) for d in days[:5]]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", help="an empty PostgreSQL database (default: a throwaway cluster)")
    ap.add_argument("--sizes", default="1000000,10000000", help="reads in the table at each measurement")
    ap.add_argument("--extrapolate", type=int, default=100_000_000)
    args = ap.parse_args()
    cluster = None
    if not args.database:
        from conftest import PgCluster

        cluster = PgCluster()
        cluster.start()
        args.database = cluster.new_database()
    results = []
    try:
        store = PgStore(args.database, Path("/tmp/alprd-bench-audit.key"))
        print(f"PostgreSQL {store._raw.info.server_version}; {UNITS} units; reads without crops", flush=True)
        have = 0
        for size in (int(s) for s in args.sizes.split(",")):
            fill_to(store, have, size)
            have = size
            rate = ingest_rate(store)
            have += 25 * 200
            lat = searches(store)
            mb = store._raw.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
            results.append((have, rate, lat, mb))
            print(f"\n{have:,} reads: ingest {rate:,.0f} reads/s, database {mb:,.0f} MB", flush=True)
            for name, ms in lat.items():
                print(f"  search {name:<32} {ms:8.1f} ms", flush=True)
        if len(results) >= 2 and args.extrapolate > results[-1][0]:
            (n0, r0, l0, _), (n1, r1, l1, m1) = results[-2:]
            n = args.extrapolate
            k = (math.log(n) - math.log(n1)) / (math.log(n1) - math.log(n0))
            print(f"\n{n:,} reads, extrapolated (log n from {n0:,} and {n1:,}; size linear): "
                  f"ingest {r1 + k * (r1 - r0):,.0f} reads/s, database {m1 / n1 * n / 1024:,.0f} GB "
                  f"(+{2.7e3 * n / 2**30:,.0f} GB of crops)")
            for name in l1:
                print(f"  search {name:<32} {max(l1[name] + k * (l1[name] - l0[name]), l1[name]):8.1f} ms")
        store.close()
    finally:
        if cluster:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
