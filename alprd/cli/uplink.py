"""Uplink commands: ``alprd upload`` (push the buffer now) and ``alprd ingest`` (department receiver)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time
from pathlib import Path

from alprd.config import Config
from alprd.log import setup_logging
from alprd.policy.retention import RetentionService
from alprd.server import FleetStore
from alprd.store import Store, StoreError, open_store
from alprd.uplink.ingest import Ingest, IngestDB
from alprd.uplink.link import claim_client_id
from alprd.uplink.uploader import Uploader


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upload", help="upload buffered reads and alerts to the broker, without the camera")
    p.add_argument("--drain", action="store_true", help="exit once the receiver has receipted everything")
    p.add_argument("--timeout", type=float, default=0, help="with --drain: give up after this many seconds")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("ingest", help="department side: receive reads from the broker into SQLite")
    p.add_argument("--db", type=Path, required=True, help="the receiver's SQLite database (created if missing)")
    p.add_argument("--client-id", help="stable id: the broker keeps this receiver's queue under it (default "
                                        "alprd-ingest-HOST, -2, -3... for a second, third receiver on the host)")
    p.add_argument("--shared", metavar="GROUP",
                   help="share reads and alerts with other receivers in GROUP ($share/GROUP/...)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("server", help="department side: every unit's uploads into the department database "
                                      "([store] database: PostgreSQL or SQLite), purged on its own retention")
    p.add_argument("--client-id", help="stable id: the broker keeps this server's queue under it (default "
                                        "alprd-server-HOST, -2, -3... for more servers on the host)")
    p.add_argument("--shared", metavar="GROUP",
                   help="share the uploads with the other servers in GROUP (MQTT 5 $share/GROUP/...)")
    p.set_defaults(func=cmd_server)


def _logged_store(config: Config) -> Store | None:
    """Logging set up and the store opened; None (the reason printed) if it cannot be."""
    setup_logging(config.logging)
    try:
        return open_store(config.store)
    except StoreError as err:
        print(f"alprd: {err}", file=sys.stderr)
        return None


def cmd_upload(args: argparse.Namespace, config: Config) -> int:
    store = _logged_store(config)
    if store is None:
        return 1
    uploader = Uploader(config, store)
    try:
        drained = asyncio.run(_upload(uploader, args.drain, args.timeout))
    finally:
        store.close()
    if args.drain and not drained:
        print(f"alprd: not drained: {uploader.link.error or 'no receipt for all yet (is alprd ingest running?)'}",
              file=sys.stderr)
        return 1
    return 0


async def _upload(uploader: Uploader, drain: bool, timeout: float) -> bool:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = asyncio.create_task(uploader.run(stop))
    deadline = time.monotonic() + timeout if timeout > 0 else float("inf")
    drained = False
    while not stop.is_set() and not service.done():
        if drain and uploader.drained():
            drained = True
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    stop.set()
    await service
    return drained


def cmd_ingest(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config.logging)
    client_id, lock = args.client_id, None
    if not client_id:  # the lock next to the database holds the id while this receiver runs
        client_id, lock = claim_client_id(f"alprd-ingest-{socket.gethostname()}", args.db.parent)
    db = IngestDB(args.db)
    ingest = Ingest(config.uplink, db, client_id, args.shared)
    try:
        asyncio.run(_receive(ingest, db=str(args.db), shared=args.shared))
    finally:
        db.close()
        if lock:
            lock.close()
    return 0


def cmd_server(args: argparse.Namespace, config: Config) -> int:
    store = _logged_store(config)
    if store is None:
        return 1
    client_id, lock = args.client_id, None
    if not client_id:  # the lock in state_dir holds the id while this server runs
        config.store.state_dir.mkdir(parents=True, exist_ok=True)
        client_id, lock = claim_client_id(f"alprd-server-{socket.gethostname()}", config.store.state_dir)
    ingest = Ingest(config.uplink, FleetStore(store), client_id, args.shared)
    try:
        asyncio.run(_receive(ingest, RetentionService(store, config.policy), db=str(store.path), shared=args.shared))
    finally:
        store.close()
        if lock:
            lock.close()
    return 0


async def _receive(ingest: Ingest, retention: RetentionService | None = None, **about: str | None) -> None:
    """Receive (the MQTT thread) and purge (on schedule) until SIGTERM / Ctrl-C; stats every minute."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ingest.start()
    ingest.log.info("ingest_started", **about)
    purging = asyncio.create_task(retention.run(stop)) if retention else None
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 60)
            ingest.log.info("ingest_stats", connected=ingest.link.connected, error=ingest.link.error,
                            **ingest.stats)
    finally:
        stop.set()
        if purging:
            await purging
        await asyncio.to_thread(ingest.stop)
