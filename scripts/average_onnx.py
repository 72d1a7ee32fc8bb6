#!/usr/bin/env python3
"""Average the weights of float ONNX models of one architecture (a "model soup").

Two fine-tunes from the same start lie in one basin of the loss, so the average of
their weights often reads better than either, at no cost at run time (Wortsman et al.,
"Model soups", 2022). The models must have been exported by the same script: their
initializers are matched by name and shape. Quantize the result as usual.

    python scripts/average_onnx.py --src runs/a/plate_ocr.onnx runs/b/plate_ocr.onnx \
        [--weights 0.5 0.5] --out runs/soup.onnx
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def average(paths: list[str], weights: list[float]) -> onnx.ModelProto:
    """The first model with every float initializer replaced by the weighted mean over ``paths``."""
    models = [onnx.load(p) for p in paths]
    tensors = [{t.name: numpy_helper.to_array(t) for t in m.graph.initializer} for m in models]
    base = models[0]
    for i, t in enumerate(base.graph.initializer):
        arrays = [d.get(t.name) for d in tensors]
        if any(a is None or a.shape != arrays[0].shape for a in arrays):
            raise ValueError(f"{t.name}: not in every model with one shape; were they exported by the same script?")
        if arrays[0].dtype.kind == "f":
            mean = sum(w * a.astype(np.float64) for w, a in zip(weights, arrays, strict=True))
            base.graph.initializer[i].CopyFrom(numpy_helper.from_array(mean.astype(arrays[0].dtype), t.name))
    return base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", nargs="+", required=True)
    ap.add_argument("--weights", nargs="+", type=float, help="one per model, summing to 1 (default: equal)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    weights = args.weights or [1 / len(args.src)] * len(args.src)
    if len(weights) != len(args.src) or abs(sum(weights) - 1) > 1e-6:
        print("error: give one --weights value per --src model, summing to 1", file=sys.stderr)
        return 2
    try:
        onnx.save(average(args.src, weights), args.out)
    except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
