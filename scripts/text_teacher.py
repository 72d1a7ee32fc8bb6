"""PP-OCRv4's text detector as a teacher for the plate detector (``train_detector.py --text-teacher``).

Its DB text-probability map, learnt from a large text corpus, says where there is text in every
training photo, plate-free negatives included. The detector learns to predict that map from its
stride-4 features as a second task next to the plate heatmap, so that its backbone learns text
features from the teacher as well as plate features from our 225 photos. The maps are computed
once per photo (1.6x enlarged, as PP-OCR wants its text larger than our detector sees plates), kept
at the photo's stride-4 grid in a cache, and warped with the photo by the training augmentation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

STRIDE = 4
SCALE = 1.6  # teacher input = photo enlarged 1.6x (640 -> 1024), rounded to a multiple of 32


def teacher_session(threads: int = 2):
    """onnxruntime session over rapidocr-onnxruntime's PP-OCRv4 detector (Apache-2.0)."""
    import onnxruntime as ort
    import rapidocr_onnxruntime

    path = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def text_map(sess, img: np.ndarray) -> np.ndarray:
    """The teacher's text probability of a BGR photo, uint8 0..255 on the photo's stride-4 grid."""
    h, w = img.shape[:2]
    th, tw = (max(32, round(v * SCALE / 32) * 32) for v in (h, w))
    x = cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    x = (x / 255.0 - 0.5) / 0.5  # rapidocr's DetPreProcess: BGR as read, mean = std = 0.5
    prob = sess.run(None, {"x": x.transpose(2, 0, 1)[None]})[0][0, 0]
    grid = cv2.resize(prob, (w // STRIDE, h // STRIDE), interpolation=cv2.INTER_AREA)
    return np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8)


def text_maps(images: np.ndarray, cache: Path, log=print) -> np.ndarray:
    """Teacher maps of all ``images`` [N, H, W, 3], [N, H/4, W/4] uint8, from/to a cache keyed by pixel hash."""
    keys = [hashlib.sha1(im.tobytes()).hexdigest()[:16] for im in images]
    have = dict(np.load(cache)) if cache.is_file() else {}
    todo = [i for i, k in enumerate(keys) if k not in have]
    if todo:
        sess = teacher_session()
        for n, i in enumerate(todo):
            have[keys[i]] = text_map(sess, images[i])
            if n % 200 == 199:
                log(f"text teacher: {n + 1} of {len(todo)} photos")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **have)
    return np.stack([have[k] for k in keys])


def warp_map(tmap: np.ndarray, M: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """A teacher map after the photo's affine ``M`` (photo pixels -> output pixels), on the output's stride-4
    grid as float 0..1. Grid cell u has its centre at photo pixel 4u + 1.5."""
    up = np.array([[STRIDE, 0, 1.5], [0, STRIDE, 1.5], [0, 0, 1]], np.float64)
    down = np.array([[1 / STRIDE, 0, -1.5 / STRIDE], [0, 1 / STRIDE, -1.5 / STRIDE], [0, 0, 1]], np.float64)
    Mg = (down @ np.vstack([M, [0, 0, 1]]) @ up)[:2]
    gw, gh = -(-out_w // STRIDE), -(-out_h // STRIDE)
    out = cv2.warpAffine(tmap, Mg, (gw, gh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(np.float32) * (1 / 255.0)
