"""Plate detector backed by our own ONNX model (``models/plate_detector.onnx``).

The model is a small anchor-free, CenterNet/TTFNet-style network trained by
``scripts/train_detector.py``: one fully convolutional pass gives, at stride 4,
a plate-centre heatmap and the distances from each cell centre to the four box
sides. Everything around the network is plain numpy/OpenCV:

1. letterbox: scale the image so that its longer side is ``input_size`` pixels,
   place it top-left on a grey canvas whose sides are multiples of 32;
2. run the network (input ``image``: float32 BGR 0..255, NCHW; output ``out``:
   ``[1, 5, H/4, W/4]`` = sigmoid heatmap, then left/top/right/bottom in input
   pixels);
3. keep heatmap cells that are local maxima (3x3) above ``score_threshold``,
   turn them into boxes, map them back to original-image pixels, and apply NMS.

``OnnxDetector`` implements ``alprd.vision.base.PlateDetector``; another backend
only has to implement the same one-method protocol.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from alprd.vision.base import Detection, ModelError, open_session

__all__ = ["DEFAULT_INPUT_SIZE", "OnnxDetector", "letterbox"]

DEFAULT_INPUT_SIZE = 640  # longer side of the network input, when the model file does not say
PAD_VALUE = 114  # grey used for the letterbox border (same as in training)
_ALIGN = 32  # the network downsamples 5 times
_FIX = "re-run scripts/train_detector.py or restore models/plate_detector.onnx from git"


def letterbox(image: np.ndarray, input_size: int, align: int = _ALIGN) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``input_size``; pad right/bottom to multiples of ``align``.

    Returns the padded BGR canvas and the scale (input pixels per original pixel).
    The image is placed at the top-left corner, so original = input / scale.
    """
    h, w = image.shape[:2]
    scale = input_size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    cw, ch = math.ceil(nw / align) * align, math.ceil(nh / align) * align
    if (cw, ch) == (nw, nh):
        return resized, scale
    canvas = np.full((ch, cw, 3), PAD_VALUE, np.uint8)
    canvas[:nh, :nw] = resized
    return canvas, scale


class OnnxDetector:
    """Finds plates with the ONNX detector; ``detect`` returns boxes in original pixels.

    ``input_size``: longer side of the network input (``None``: the value stored in
    the model's metadata, else 640). A 1920x1080 frame at 640 runs as 640x384. An
    ``input_size`` above the model's own is used only as far as the image has the
    pixels: a 640x640 photo still runs at 640, since enlarging it past what the model
    was trained at blurs it and costs time for nothing.
    ``nms_iou``: boxes overlapping a better one by more than this are dropped.
    ``max_detections``: at most this many boxes per image, best first.
    """

    def __init__(
        self,
        model_path: str | Path,
        threads: int = 1,
        score_threshold: float = 0.4,
        input_size: int | None = None,
        nms_iou: float = 0.45,
        max_detections: int = 50,
    ) -> None:
        self.model_path = Path(model_path)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        if not 0.0 < self.score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = int(threads)
        self._session, meta = self._load(self.model_path, self.threads)
        self.stride = int(meta.get("stride", 4))
        size = input_size if input_size is not None else int(meta.get("input_size", DEFAULT_INPUT_SIZE))
        if size < _ALIGN or size % _ALIGN:
            raise ValueError(f"input_size must be a positive multiple of {_ALIGN}, got {size}")
        self.input_size = int(size)
        self.native_size = int(meta.get("input_size", DEFAULT_INPUT_SIZE))
        self.metadata = meta

    @staticmethod
    def _load(path: Path, threads: int):
        session = open_session(path, threads, "detector model", f"{_FIX}, or set vision.detector_model")
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if (len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 1
                or len(outputs[0].shape) != 4 or outputs[0].shape[1] not in (5, "5")):
            raise ModelError(
                f"detector model {path} has the wrong inputs/outputs (want 1 NCHW image in, "
                f"1 [N,5,H,W] map out; got {[i.shape for i in inputs]} -> {[o.shape for o in outputs]}): {_FIX}"
            )
        meta = dict(session.get_modelmeta().custom_metadata_map)
        return session, meta

    @property
    def input_name(self) -> str:
        return self._session.get_inputs()[0].name

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The network input blob (1, 3, H, W) float32 and the letterbox scale."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"expected a BGR image (H, W, 3), got shape {image.shape}")
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {image.dtype}")
        size = min(self.input_size, max(self.native_size, max(image.shape[:2])))
        canvas, scale = letterbox(image, size)
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        return blob, scale

    def decode(self, out: np.ndarray, scale: float, orig_w: int, orig_h: int) -> list[Detection]:
        """Turn the network output map into NMS-filtered boxes in original pixels."""
        heat = np.ascontiguousarray(out[0, 0])
        peaks = (heat >= self.score_threshold) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
        ys, xs = np.nonzero(peaks)
        if ys.size == 0:
            return []
        scores = heat[ys, xs]
        if scores.size > 4 * self.max_detections:
            keep = np.argpartition(-scores, 4 * self.max_detections)[: 4 * self.max_detections]
            ys, xs, scores = ys[keep], xs[keep], scores[keep]
        dist = out[0, 1:5][:, ys, xs].T  # (n, 4): left, top, right, bottom in input pixels
        cx = (xs.astype(np.float32) + 0.5) * self.stride
        cy = (ys.astype(np.float32) + 0.5) * self.stride
        boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1) / scale
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, orig_w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, orig_h)
        wh = boxes[:, 2:] - boxes[:, :2]
        ok = (wh[:, 0] >= 1) & (wh[:, 1] >= 1)
        boxes, scores, wh = boxes[ok], scores[ok], wh[ok]
        if scores.size == 0:
            return []
        rects = np.concatenate([boxes[:, :2], wh], 1).astype(np.float32).tolist()
        keep = cv2.dnn.NMSBoxes(rects, scores.astype(np.float32).tolist(), self.score_threshold, self.nms_iou,
                                top_k=self.max_detections)
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        return [Detection(float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3]),
                          float(scores[i])) for i in keep]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Plates in a BGR uint8 image of any size, best first, in original-image pixels."""
        h, w = image.shape[:2]
        if h < 1 or w < 1:
            return []
        blob, scale = self.preprocess(image)
        out = self._session.run(None, {self.input_name: blob})[0]
        return self.decode(out, scale, w, h)

    def __repr__(self) -> str:
        return (f"OnnxDetector({str(self.model_path)!r}, threads={self.threads}, "
                f"score_threshold={self.score_threshold}, input_size={self.input_size})")
