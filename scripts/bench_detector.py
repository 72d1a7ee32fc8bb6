#!/usr/bin/env python3
"""Time the plate detector on 1920x1080 frames, end to end (letterbox + network + decode + NMS).

Prints the onnxruntime settings and the median / p95 milliseconds per frame.
Frames are synthetic demo-camera scenes (``alprd.synth``), so no data is needed;
``--scenes real`` pastes the real plate-detect valid photos into 1080p street frames
instead, whose clutter gives the verifier realistic numbers of candidates.
``--verifier`` times the cascade the daemon runs by default: the detector at
``--candidate-threshold``, then ``plate_verifier.onnx`` on every candidate box; the zoomed
second pass over ``vision.zoom_window`` runs unless ``--no-zoom``. ``--whole-read`` times what
the daemon does per frame: all of that plus the OCR of every box (``PlateReader.read``).

Usage:
    python scripts/bench_detector.py [--model models/plate_detector.onnx] [--threads 1]
        [--input-size 640] [--frames 200] [--pin-core 0]
        [--verifier models/plate_verifier.onnx --candidate-threshold 0.1] [--scenes real]
        [--no-zoom] [--whole-read [--ocr-second-read X] [--ocr-level-degrees D]]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alprd import synth
from alprd.config import VisionConfig
from alprd.vision import load_detector, load_reader


def synthetic_frames(n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        f = synth.street_scene(1920, 1080, rng)
        for _ in range(3):
            pw = int(rng.integers(60, 200))
            synth.paste_plate_on_car(f, synth.render_plate(synth.random_plate_text(rng), rng),
                                     (int(rng.integers(300, 1620)), int(rng.integers(500, 950))), pw, rng)
        frames.append(f)
    return frames


def real_frames(data: Path, n: int = 40) -> list[np.ndarray]:
    """plate-detect valid photos, each pasted unscaled into a synthetic 1080p street frame."""
    rng = np.random.default_rng(0)
    files = sorted((data / "plate-detect" / "valid" / "images").glob("*.jpg"))[:n]
    if not files:
        raise SystemExit(f"no images under {data / 'plate-detect' / 'valid' / 'images'}")
    frames = []
    for f in files:
        im = cv2.imread(str(f), cv2.IMREAD_COLOR)
        frame = synth.street_scene(1920, 1080, rng)
        h, w = im.shape[:2]
        ox, oy = int(rng.integers(0, 1920 - w + 1)), int(rng.integers(0, 1080 - h + 1))
        frame[oy:oy + h, ox:ox + w] = im
        frames.append(frame)
    return frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "plate_detector.onnx"))
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--input-size", type=int, default=0, help="longer side of the network input; 0 = model default")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--pin-core", type=int, default=-1, help="pin this process to one CPU core (Linux)")
    ap.add_argument("--verifier", default="", help="also run this plate_verifier.onnx on the candidates")
    ap.add_argument("--candidate-threshold", type=float, default=0.1)
    ap.add_argument("--scenes", choices=["synthetic", "real"], default="synthetic")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--no-zoom", action="store_true", help="without the zoomed second pass (vision.zoom_window = [])")
    ap.add_argument("--whole-read", action="store_true", help="time detection + OCR, as the daemon reads a frame")
    ap.add_argument("--ocr-second-read", type=float, default=VisionConfig().ocr_second_read,
                    help="with --whole-read: vision.ocr_second_read (0 = never)")
    ap.add_argument("--ocr-level-degrees", type=float, default=VisionConfig().ocr_level_degrees,
                    help="with --whole-read: vision.ocr_level_degrees (0 = never level)")
    args = ap.parse_args(argv)

    if args.pin_core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.pin_core})
    cv2.setNumThreads(1)  # preprocessing on the same single core
    import onnxruntime as ort

    cfg = VisionConfig(detector_model=args.model, verifier_model=args.verifier, threads=args.threads,
                       detector_input=args.input_size, candidate_threshold=args.candidate_threshold,
                       ocr_second_read=args.ocr_second_read, ocr_level_degrees=args.ocr_level_degrees,
                       **({"zoom_window": []} if args.no_zoom else {}))
    det = load_detector(cfg)
    if args.whole_read:
        reader = load_reader(cfg)
        det.detect = reader.read  # the timed call: every box read too
    net = det.candidates if args.verifier else det  # the network itself, for its input size
    net = getattr(net, "inner", net)
    frames = real_frames(Path(args.data)) if args.scenes == "real" else synthetic_frames()
    blob, _ = net.preprocess(frames[0])
    for i in range(args.warmup):
        det.detect(frames[i % len(frames)])
    times, pre, n_det = [], [], 0
    for i in range(args.frames):
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        net.preprocess(f)
        t1 = time.perf_counter()
        n_det += len(det.detect(f))
        t2 = time.perf_counter()
        pre.append(t1 - t0)
        times.append(t2 - t1)
    ms = np.array(times) * 1000
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "n/a"
    print(f"model: {det!r}")
    print(f"onnxruntime {ort.__version__}, CPUExecutionProvider, intra_op_num_threads={args.threads}, "
          f"inter_op_num_threads=1, ORT_SEQUENTIAL, graph optimisation ORT_ENABLE_ALL; cv2 threads 1; "
          f"CPU affinity {affinity}")
    print(f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores visible)")
    if args.verifier:
        cand = np.mean([len(net.detect(f)) for f in frames])
        print(f"verifier: {cand:.1f} candidate boxes per frame at {args.candidate_threshold} (whole-frame pass), "
              "each verified")
    print(f"zoomed pass: {'off' if args.no_zoom else f'over {cfg.zoom_window} of the frame'}")
    print(f"frames: {args.scenes} 1920x1080 -> network input {blob.shape[3]}x{blob.shape[2]} "
          f"(input_size={net.input_size}), "
          f"{args.frames} timed runs after {args.warmup} warm-up, {n_det / args.frames:.2f} plates/frame found")
    what = "read() per 1080p frame (detection + OCR)" if args.whole_read else \
        "detect() per 1080p frame (letterbox + network + decode + NMS)"
    print(f"{what}: median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, min {ms.min():.2f} ms")
    print(f"  of which letterbox/preprocess alone: median {np.median(pre) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
