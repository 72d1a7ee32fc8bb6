"""Keeps a live camera going: a lost camera is reopened with back-off, and reported.

Wraps any live :class:`~alprd.capture.FrameSource`. ``read()`` only returns
``None`` once the daemon stops; while the camera is gone it waits and retries
(0.5 s, 1 s, 2 s ... up to ``camera.reopen_backoff_max_s``) and ``status()``
says so. A stream that opens and dies again at once is backed off too, so a
flapping camera is not hammered. Frames are renumbered on one monotonic clock across reopenings, so
de-duplication does not see time jump back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alprd.capture import CaptureError, Frame, FrameSource
from alprd.log import get_logger
from alprd.records import iso, utc_now

BACKOFF_INITIAL_S = 0.5
READ_FAILURES_BEFORE_REOPEN = 3  # a single dropped grab is not a lost camera
STABLE_AFTER_S = 30.0  # a camera that ran this long gets an immediate reopen; one that keeps dying, back-off


class RateMeter:
    """Frames per second over the last few seconds; 0 when frames stopped coming."""

    def __init__(self, window: int = 60, idle_s: float = 2.0):
        self._times: deque[float] = deque(maxlen=window)
        self.idle_s = idle_s

    def tick(self, now: float) -> None:
        self._times.append(now)

    def rate(self, now: float) -> float:
        t = self._times
        if len(t) < 2 or now - t[-1] > self.idle_s:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0]) if t[-1] > t[0] else 0.0


class Reconnecting:
    """A live source that survives unplugging, stream drops and late power-up."""

    def __init__(self, make: Callable[[], FrameSource], name: str, backoff_max_s: float,
                 backoff_initial_s: float = BACKOFF_INITIAL_S):
        self._make = make
        self.name = name
        self.backoff_max_s = backoff_max_s
        self.backoff_initial_s = backoff_initial_s
        self._inner: FrameSource | None = None
        self._stopping = threading.Event()
        self._delay = backoff_initial_s
        self._opened_at = 0.0
        self._index = 0
        self._meter = RateMeter()
        self.fps = 0.0
        self.opens = 0
        self.losses = 0
        self.last_error: str | None = None
        self.last_frame_at: str | None = None
        self.lost_since: str | None = utc_now()
        self.log = get_logger("alprd.capture").bind(camera=name)

    # -- FrameSource -------------------------------------------------------------
    def open(self) -> None:
        """Try once; a camera that is not there yet is retried by ``read()``, not fatal."""
        self._try_open()

    def read(self) -> Frame | None:
        failures = 0
        while not self._stopping.is_set():
            if self._inner is None and not self._try_open():
                self._back_off()
                continue
            try:
                frame = self._inner.read()
                if frame is None:
                    raise CaptureError("stream ended")
            except CaptureError as err:
                failures += 1
                if failures >= READ_FAILURES_BEFORE_REOPEN:
                    self._lose(str(err))
                    failures = 0
                continue
            return self._stamp(frame)
        return None

    def close(self) -> None:
        self._stopping.set()
        if self._inner is not None:
            self._inner.close()
            self._inner = None

    # -- daemon hooks -----------------------------------------------------------
    def interrupt(self) -> None:
        """Make a waiting ``read()`` return ``None`` soon (safe from any thread)."""
        self._stopping.set()

    async def interrupt_on_stop(self, stop: asyncio.Event) -> None:
        """Daemon service: a stop must not wait out a long back-off."""
        await stop.wait()
        self.interrupt()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "source": self.name, "state": "streaming" if self._inner is not None else "reconnecting",
            "fps": round(self._meter.rate(now), 1), "frames": self._index,
            "last_frame_at": self.last_frame_at, "opens": self.opens, "losses": self.losses,
            "last_error": self.last_error, "lost_since": self.lost_since,
        }

    # -- internals ----------------------------------------------------------------
    def _try_open(self) -> bool:
        source = self._make()
        try:
            source.open()
        except CaptureError as err:
            if self.last_error != str(err):
                self.log.warning("camera_open_failed", error=str(err), retry_in_s=self._delay)
            self.last_error = str(err)
            return False
        self._inner, self.fps = source, source.fps
        self.opens += 1
        self._opened_at = time.monotonic()
        self.lost_since = None
        self.log.info("camera_open", opens=self.opens, fps=source.fps)
        return True

    def _lose(self, error: str) -> None:
        self.losses += 1
        self.last_error = error
        self.lost_since = utc_now()
        self.log.warning("camera_lost", error=error, losses=self.losses)
        if self._inner is not None:
            self._inner.close()
            self._inner = None
        if time.monotonic() - self._opened_at < STABLE_AFTER_S:
            self._back_off()
        else:
            self._delay = self.backoff_initial_s

    def _back_off(self) -> None:
        self._stopping.wait(self._delay)
        self._delay = min(self._delay * 2, self.backoff_max_s)

    def _stamp(self, frame: Frame) -> Frame:
        now = time.monotonic()
        self._meter.tick(now)
        self.last_frame_at = iso(datetime.fromtimestamp(frame.wall, UTC))
        out = Frame(frame.image, self._index, now, frame.wall)
        self._index += 1
        return out
