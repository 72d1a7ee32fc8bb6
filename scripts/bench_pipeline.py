"""End-to-end benchmark of `alprd run` on a 1920x1080 video.

Renders a synthetic 1080p video (cars with plates passing a street), then runs
the real daemon on it twice with the shipped models and a real SQLite file:
  1. as fast as possible (file replay, nothing dropped): end-to-end frames/s;
  2. paced like a camera at --camera-fps: how many frames the newest-wins
     back-pressure drops when inference is slower than the camera.
Prints frames/s, inference ms/frame, reads, dropped frames and peak RSS.

    .venv/bin/python scripts/bench_pipeline.py [--frames 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

import cv2

from alprd.app import build_daemon
from alprd.capture import SyntheticSource
from alprd.config import config_from_dict
from alprd.log import setup_logging


def render_video(path: Path, frames: int, fps: float) -> list[str]:
    cfg = config_from_dict({"camera": {"frames": frames, "realtime": False, "fps": fps}}).camera
    src = SyntheticSource(cfg)
    src.open()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (1920, 1080))
    while (frame := src.read()) is not None:
        writer.write(frame.image)
    writer.release()
    return src.plates_shown


def run_once(video: Path, state: Path, realtime: bool, threads: int, camera_fps: float) -> dict:
    cfg = config_from_dict({
        "camera": {"source": "video", "path": str(video), "realtime": realtime, "fps": camera_fps},
        "vision": {"threads": threads},
        "store": {"state_dir": str(state)},
        "logging": {"level": "warning"},
    })
    daemon = build_daemon(cfg)
    if realtime:
        daemon.source.fps = camera_fps  # pace like a camera at the requested rate
    t0 = time.perf_counter()
    stats = asyncio.run(daemon.run(install_signals=False))
    wall = time.perf_counter() - t0
    return {
        "frames": stats.frames_captured, "processed": stats.frames_processed,
        "dropped": stats.frames_dropped, "reads": stats.reads,
        "fps": stats.frames_processed / wall, "inference_ms": stats.inference_ms_avg,
        "plates": [r["plate"] for r in daemon.store.query("select plate from reads order by ts")],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    ap.add_argument("--camera-fps", type=float, default=30.0)
    args = ap.parse_args()
    setup_logging(config_from_dict({"logging": {"level": "warning"}}).logging)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "street_1080p.avi"
        shown = render_video(video, args.frames, args.camera_fps)
        print(f"video: {args.frames} frames 1920x1080, {len(shown)} plates, "
              f"{video.stat().st_size / 1e6:.0f} MB; cpu cores {os.cpu_count()}, threads {args.threads}")
        fast = run_once(video, Path(tmp) / "fast", False, args.threads, args.camera_fps)
        correct = len(set(shown) & set(fast["plates"]))
        print(f"as fast as possible: {fast['fps']:.1f} frames/s end to end, inference "
              f"{fast['inference_ms']:.1f} ms/frame, {fast['reads']} reads, {correct}/{len(shown)} plates exact, "
              f"dropped {fast['dropped']}")
        paced = run_once(video, Path(tmp) / "paced", True, args.threads, args.camera_fps)
        print(f"camera at {args.camera_fps:g} fps: processed {paced['processed']}/{paced['frames']}, "
              f"dropped {paced['dropped']} ({paced['dropped'] / max(1, paced['frames']):.0%}), "
              f"{paced['reads']} reads")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
