#!/usr/bin/env python3
"""Hotlist benchmark: load a big list into SQLite, build the index, match reads on one core.

    .venv/bin/python scripts/bench_hotlist.py                 # 1,000,000 entries
    .venv/bin/python scripts/bench_hotlist.py --entries 100000 --reads 20000

Prints the time to store the list and build the index, the memory the index
takes, and reads/s matched (the bare index, and the daemon's path that also
fetches the entries of each hit from SQLite). Target: >= 10,000 reads/s.
Then the cost of one partial plate alone, a usual one against the worst a row
can be (a regex once took minutes a read on sixty ``*``): it must not be more.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import random
import string
import tempfile
import time
from collections import Counter
from pathlib import Path

from alprd.config import HotlistConfig
from alprd.hotlist import repository
from alprd.hotlist.entries import Entry
from alprd.hotlist.hotlist import Hotlist
from alprd.hotlist.match import CONFUSION_CLASSES, PlateIndex
from alprd.store import Store

LETTERS, DIGITS = string.ascii_uppercase, string.digits
SHAPES = ("LLLDDDD", "LLLDDD", "DLLLDDD", "DDDLLL", "LLDDLLL", "LLLLDDD", "DDLLLDD")
CATEGORIES = ("stolen_vehicle", "stolen_plate", "wanted_person", "missing_person", "felony_vehicle", "bolo")
SWAP = {c: g for g in CONFUSION_CLASSES for c in g}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def plate(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS if c == "L" else DIGITS) for c in rng.choice(SHAPES))


def misread(rng: random.Random, p: str) -> str:
    """A plausible OCR error: a confusable character, or one dropped or added."""
    i = rng.randrange(len(p))
    kind = rng.random()
    if kind < 0.5 and any(c in SWAP for c in p):
        j = rng.choice([k for k, c in enumerate(p) if c in SWAP])
        return p[:j] + rng.choice(SWAP[p[j]]) + p[j + 1:]
    if kind < 0.75:
        return p[:i] + p[i + 1:]
    return p[:i] + rng.choice(LETTERS + DIGITS) + p[i:]


def wildcard(rng: random.Random) -> str:
    p = list(plate(rng))
    if rng.random() < 0.5:
        p[rng.randrange(len(p))] = "?"
        return "".join(p)
    return "".join(p[: rng.randint(3, 5)]) + "*"


WILDCARD_CASES = {"'*ABC'": "*ABC", "'*' * 60 + 'ABC'": "*" * 60 + "ABC", "'*A' * 10 + '*'": "*A" * 10 + "*"}


def wildcard_cost(reads: list[str]) -> dict[str, float]:
    """Microseconds a read for an index of one ``*`` pattern, tried on every read."""
    out = {}
    for name, pattern in WILDCARD_CASES.items():
        index = PlateIndex([pattern])
        t0 = time.perf_counter()
        for r in reads:
            index.match(r)
        out[name] = (time.perf_counter() - t0) / len(reads) * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--wildcards", type=int, default=500, help="partial plates among the entries")
    ap.add_argument("--reads", type=int, default=100_000)
    ap.add_argument("--hit-rate", type=float, default=0.02, help="share of reads that are (mis)read hits")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        pats = [plate(rng) for _ in range(args.entries - args.wildcards)]
        pats += [wildcard(rng) for _ in range(args.wildcards)]
        entries = [Entry(p, rng.choice(CATEGORIES), state="CO", priority=rng.randint(1, 9),
                         case_number=f"C-{i}", entered="2026-11-01") for i, p in enumerate(pats)]
        t0 = time.perf_counter()
        repository.replace_department_list(store, entries, "bench", version=1)
        t_store = time.perf_counter() - t0
        del entries

        hot = Hotlist(store, HotlistConfig())
        rss0 = rss_mb()
        t0 = time.perf_counter()
        hot.reload()
        t_build = time.perf_counter() - t0
        rss1 = rss_mb()
        index = hot.index

        plain = [p for p in pats if "?" not in p and "*" not in p]
        n_hits = int(args.reads * args.hit_rate)
        reads = [plate(rng) for _ in range(args.reads - n_hits)]
        reads += [rng.choice(plain) if rng.random() < 0.5 else misread(rng, rng.choice(plain))
                  for _ in range(n_hits)]
        rng.shuffle(reads)

        t0 = time.perf_counter()
        results = [index.match(r) for r in reads]
        t_index = time.perf_counter() - t0
        best = Counter(hits[0].kind.label for hits in results if hits)
        t0 = time.perf_counter()
        matched = sum(1 for r in reads if hot.match(r))
        t_live = time.perf_counter() - t0
        store.close()
    cost = wildcard_cost(reads[:20_000])

    print(f"hotlist benchmark: {args.entries:,} entries ({args.wildcards} partial plates), "
          f"{args.reads:,} reads, {args.hit_rate:.0%} of them hits or misread hits, one core")
    print(f"  store list in SQLite (chunks, 1 swap):  {t_store:6.1f} s")
    print(f"  build index from SQLite:                {t_build:6.1f} s")
    print(f"  index memory: {index.nbytes / 2**20:.0f} MiB tables; process RSS +{rss1 - rss0:.0f} MiB "
          f"for the index (RSS now {rss1:.0f} MiB)")
    print(f"  index.match:   {args.reads / t_index:>9,.0f} reads/s  ({sum(best.values()):,} reads matched; "
          f"best match kind: {', '.join(f'{k} {n:,}' for k, n in sorted(best.items()))})")
    print(f"  Hotlist.match: {args.reads / t_live:>9,.0f} reads/s  (with SQLite entry lookup; {matched:,} matched)")
    print(f"  target >= 10,000 reads/s: {'met' if args.reads / t_live >= 10_000 else 'NOT met'}")
    print("  one partial plate alone: " + ", ".join(
        f"{name} {us:.1f} us/read" for name, us in cost.items()))


if __name__ == "__main__":
    main()
