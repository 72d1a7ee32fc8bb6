"""The long-running daemon: capture -> detect/OCR -> dedupe -> store -> listeners.

Back-pressure: the capture thread offers frames to a small bounded queue; when
inference is slower than a live camera the oldest waiting frame is dropped (and
counted), so the newest frame wins and memory never piles up. A file replayed
as fast as possible (not live) waits for room instead, so no frame is skipped. Inference runs in
a worker thread, off the event loop. A read is committed to SQLite before any
listener (hotlist matcher, printer, uplink) sees it.

The engine knows no feature: :mod:`alprd.app` plugs them in with two calls,
``on_read(callback)`` (called with each committed :class:`~alprd.records.Read`)
and ``add_service(name, run, status)`` (a background coroutine
``async def run(stop: asyncio.Event)`` and/or a health-status section).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from alprd.capture import Frame, FrameSource
from alprd.config import Config
from alprd.daemon.dedupe import Deduper, Observation, Track
from alprd.gps import Fix
from alprd.log import get_logger
from alprd.records import Read, iso
from alprd.store import Store
from alprd.vision.reader import PlateReader, Sighting

ReadListener = Callable[[Read], Awaitable[None] | None]
Service = Callable[[asyncio.Event], Awaitable[None]]
StatusProvider = Callable[[], dict[str, Any]]
PositionProvider = Callable[[], Fix | None]

_END = object()  # end-of-stream marker in the frame queue


@dataclass
class PipelineStats:
    frames_captured: int = 0
    frames_dropped: int = 0
    frames_processed: int = 0
    sightings: int = 0
    reads: int = 0
    rereads: int = 0
    listener_errors: int = 0
    inference_ms_avg: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    last_read_at: str | None = None

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self.started_at
        return self.frames_processed / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("started_at")
        d["fps"] = round(self.fps, 2)
        d["inference_ms_avg"] = round(self.inference_ms_avg, 1)
        return d


@dataclass
class _Seen:
    """What a track remembers about a sighting until it becomes a read."""

    sighting: Sighting
    wall: float
    fix: Fix | None
    context: np.ndarray | None = None  # the vehicle around the plate, already scaled down


def context_region(image: np.ndarray, box: tuple[float, float, float, float], width: int) -> np.ndarray | None:
    """The vehicle around a plate box (4 plate widths across, mostly above the plate), scaled to at most
    ``width`` pixels wide: a small copy, so the frame itself is not kept alive."""
    x1, y1, x2, y2 = box
    w = max(x2 - x1, 1.0)
    cx = (x1 + x2) / 2
    h, wi = image.shape[:2]
    left, right = int(max(cx - 2 * w, 0)), int(min(cx + 2 * w, wi))
    top, bottom = int(max(y1 - 2.2 * w, 0)), int(min(y2 + 0.6 * w, h))
    if right - left < 2 or bottom - top < 2:
        return None
    region = image[top:bottom, left:right]
    scale = min(1.0, width / region.shape[1])
    return cv2.resize(region, (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)


class Daemon:
    def __init__(
        self,
        config: Config,
        store: Store,
        reader: PlateReader,
        source: FrameSource,
        position: PositionProvider | None = None,
    ):
        self.config = config
        self.store = store
        self.reader = reader
        self.source = source
        self.position = position or (lambda: None)
        self.stats = PipelineStats()
        self._read_listeners: list[ReadListener] = []
        self._services: list[tuple[str, Service]] = []
        self._status_providers: dict[str, StatusProvider] = {"pipeline": self.stats.as_dict}
        p = config.pipeline
        self._dedupe: Deduper[_Seen] = Deduper(p.track_gap_s, p.reread_window_s, p.merge_max_edits)
        self._stop = asyncio.Event()
        self._capture_stop = threading.Event()
        self.log = get_logger("alprd.daemon").bind(camera=config.camera.id)

    # -- wiring (before run) -----------------------------------------------------
    def on_read(self, callback: ReadListener) -> None:
        """Call ``callback`` with each read once it is committed, in the order registered."""
        self._read_listeners.append(callback)

    def add_service(self, name: str, run: Service | None = None, status: StatusProvider | None = None) -> None:
        """A background coroutine that runs until the daemon stops, and/or the ``name`` section of the status."""
        if run is not None:
            self._services.append((name, run))
        if status is not None:
            self._status_providers[name] = status

    # -- control ----------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin a graceful stop: capture ends, queued frames drain, open tracks flush."""
        self._capture_stop.set()
        self._stop.set()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, provider in self._status_providers.items():
            try:
                out[name] = provider()
            except Exception as err:  # noqa: BLE001 - a broken provider must not hide the others
                out[name] = {"error": str(err)}
        return out

    # -- pipeline stages -------------------------------------------------------
    def _offer(self, queue: asyncio.Queue, item: object) -> None:
        """Put a frame; if the queue is full, drop the oldest waiting frame (newest wins)."""
        if queue.full():
            dropped = queue.get_nowait()
            if dropped is not _END:
                self.stats.frames_dropped += 1
        queue.put_nowait(item)

    def _capture(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        live = getattr(self.source, "live", True)

        def push(item: object) -> None:
            if live:
                loop.call_soon_threadsafe(self._offer, queue, item)
            else:  # a file replayed as fast as inference goes: wait for room, drop nothing
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

        try:
            while not self._capture_stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self.stats.frames_captured += 1
                push(frame)
        except Exception as err:  # noqa: BLE001 - logged; the pipeline drains and stops cleanly
            self.log.error("capture_failed", error=str(err))
        finally:
            push(_END)

    def _infer(self, frame: Frame) -> tuple[list[Sighting], float]:
        t0 = time.perf_counter()
        try:
            return self.reader.read(frame.image), (time.perf_counter() - t0) * 1000
        except Exception as err:  # noqa: BLE001 - a bad frame must not stop the daemon
            self.log.warning("frame_skipped", frame=frame.index, error=str(err))
            return [], (time.perf_counter() - t0) * 1000

    def _jpeg(self, image: np.ndarray | None) -> bytes | None:
        if image is None or not image.size:
            return None
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.config.pipeline.crop_jpeg_quality])
        return buf.tobytes() if ok else None

    def _context(self, frame: Frame, s: Sighting) -> np.ndarray | None:
        width = self.config.pipeline.context_width
        if not width or not self.config.pipeline.save_crops:
            return None
        d = s.detection
        return context_region(frame.image, (d.x1, d.y1, d.x2, d.y2), width)

    def _to_read(self, track: Track[_Seen]) -> tuple[Read, bytes | None]:
        """The read of a finished track, and the JPEG of the vehicle around it."""
        seen = track.best.item
        s = seen.sighting
        fix = seen.fix
        crop = self._jpeg(s.crop) if self.config.pipeline.save_crops else None
        d = s.detection
        text, confidence, char_confidences = track.fused()
        candidates = track.candidates(self.config.vision.candidates)
        return Read(
            plate=text,
            confidence=float(confidence),
            char_confidences=[float(c) for c in char_confidences],
            camera_id=self.config.camera.id,
            device_id=self.config.device.id,
            ts=iso(datetime.fromtimestamp(seen.wall, UTC)),
            box=[int(d.x1), int(d.y1), int(d.x2), int(d.y2)],
            frames=track.frames,
            lat=fix.lat if fix else None,
            lon=fix.lon if fix else None,
            speed_kmh=fix.speed_kmh if fix else None,
            heading_deg=fix.heading_deg if fix else None,
            gps_fix_ts=fix.utc if fix else None,
            gps_stale=bool(fix and fix.is_stale(self.config.gps.max_fix_age_s)),
            crop_jpeg=crop,
            candidates=[t for t, _ in candidates],
            candidate_scores=[p for _, p in candidates],
            region=next((o.item.sighting.region for o in track.votes if o.text == text), None),
        ), self._jpeg(seen.context)

    async def _commit(self, tracks: list[Track[_Seen]]) -> None:
        for track in tracks:
            read, context = self._to_read(track)
            self.store.insert_read(read, context)  # committed before anything acts on it
            self.stats.reads += 1
            self.stats.last_read_at = read.ts
            for listener in self._read_listeners:
                try:
                    result = listener(read)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception as err:  # noqa: BLE001 - the read is stored; one listener must not stop others
                    self.stats.listener_errors += 1
                    self.log.error("read_listener_failed", listener=getattr(listener, "__name__", "?"),
                                   read_id=read.id, error=str(err))

    async def _process(self, queue: asyncio.Queue, pool: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await queue.get()
            if item is _END:
                break
            frame: Frame = item
            fix = self.position()
            sightings, ms = await loop.run_in_executor(pool, self._infer, frame)
            st = self.stats
            st.frames_processed += 1
            st.sightings += len(sightings)
            st.inference_ms_avg = ms if st.frames_processed == 1 else 0.9 * st.inference_ms_avg + 0.1 * ms
            obs = [Observation(s.text, s.confidence, frame.t, _Seen(s, frame.wall, fix, self._context(frame, s)),
                               s.char_confidences, s.candidates) for s in sightings]
            await self._commit(self._dedupe.feed(obs, frame.t))
            st.rereads = self._dedupe.rereads
        await self._commit(self._dedupe.flush())

    # -- main ------------------------------------------------------------------
    async def run(self, install_signals: bool = True) -> PipelineStats:
        """Run until the source ends or a stop is requested; returns the final stats."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.config.pipeline.frame_queue)
        self.source.open()
        self.stats.started_at = time.monotonic()
        service_tasks = {asyncio.create_task(run(self._stop), name=name): name for name, run in self._services}
        self.log.info("started", source=self.config.camera.source, services=len(service_tasks))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alprd-infer") as pool:
            capture = threading.Thread(target=self._capture, args=(loop, queue), name="alprd-capture", daemon=True)
            capture.start()
            try:
                await self._process(queue, pool)
            finally:
                self._capture_stop.set()
                await asyncio.to_thread(capture.join, 10)
                self.source.close()
                self._stop.set()
                if service_tasks:
                    done, pending = await asyncio.wait(service_tasks, timeout=10)
                    for task in pending:
                        task.cancel()
                    for task in done:
                        if not task.cancelled() and task.exception():
                            self.log.error("service_failed", service=service_tasks[task],
                                           error=str(task.exception()))
                if install_signals:
                    for sig in (signal.SIGTERM, signal.SIGINT):
                        with contextlib.suppress(Exception):
                            loop.remove_signal_handler(sig)
        self.log.info("stopped", **self.stats.as_dict())
        return self.stats

