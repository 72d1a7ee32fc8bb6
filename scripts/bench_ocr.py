#!/usr/bin/env python3
"""Speed of OnnxRecognizer.read: ms per crop, batch of 1, on one thread (pre-processing included).

Crops: real US crops from DATA/us-plate-crops if present, else rendered plates.

    python scripts/bench_ocr.py [--model models/plate_ocr.onnx] [--threads 1] [--n 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from alprd.synth import random_plate_text, render_plate
from alprd.vision.ocr import OnnxRecognizer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "plate_ocr.onnx"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--batch", type=int, default=8, help="also time batches of this size")
    args = ap.parse_args()

    files = sorted((Path(args.data) / "us-plate-crops" / "images").glob("*.png"))[:64]
    crops = [c for c in (cv2.imread(str(f)) for f in files) if c is not None]
    if not crops:
        rng = np.random.default_rng(0)
        crops = [render_plate(random_plate_text(rng), rng) for _ in range(64)]
    rec = OnnxRecognizer(args.model, threads=args.threads)
    print(f"{args.model}: {rec.quantized or 'float32'}; onnxruntime {ort.__version__}, "
          f"intra_op_num_threads={args.threads}, sequential, graph optimisation ORT_ENABLE_ALL")
    for c in crops[:20]:
        rec.read([c])
    times = []
    for i in range(args.n):
        c = crops[i % len(crops)]
        t = time.perf_counter()
        rec.read([c])
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    print(f"batch 1, {args.threads} thread(s), {args.n} crops of {crops[0].shape[1]}x{crops[0].shape[0]}-ish: "
          f"median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms per crop")
    if args.batch > 1:
        bt = []
        for i in range(max(10, args.n // args.batch)):
            b = [crops[(i * args.batch + k) % len(crops)] for k in range(args.batch)]
            t = time.perf_counter()
            rec.read(b)
            bt.append((time.perf_counter() - t) / args.batch)
        print(f"batch {args.batch}: median {np.median(bt) * 1000:.2f} ms per crop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
