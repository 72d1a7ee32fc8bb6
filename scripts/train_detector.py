#!/usr/bin/env python3
"""Train alprd's plate detector and export it to ONNX (``plate_detector.onnx``).

Model: a small anchor-free CenterNet/TTFNet-style network. A depthwise-separable
backbone (strides 2..32) feeds a light FPN that is merged down to stride 4; the
head predicts a plate-centre heatmap (focal loss on Gaussian targets) and, at
every cell, the distances to the four box sides (GIoU loss on the cells near
each centre, TTFNet weighting). Stride 4 keeps plates of ~8 px findable.

Data (never valid/test):
* ``<data>/plate-detect/train`` (YOLO format; class 0 = plate, vehicles ignored),
  cached decoded in RAM, with random scale/aspect/rotation/flip/crop, 4-image
  mosaics, colour/blur/noise/JPEG augmentation;
* synthetic plates (``alprd.synth.render_plate``) pasted small onto those images;
* synthetic 1920x1080 demo-camera frames (``street_scene`` + ``paste_plate_on_car``,
  plates 60-200 px, and some smaller) downscaled like the detector does.

Training stops at ``--time-budget`` seconds of wall time (learning rate follows a
cosine over that budget), then the EMA weights are exported to
``<out>/plate_detector.onnx`` (opset 17, dynamic H/W) together with
``<out>/train_log.txt`` and ``<out>/metrics.json``; if ``<data>/plate-detect/valid``
exists the exported model is also evaluated on it. A checkpoint is exported
every ``--export-every`` seconds too, so a late crash still leaves a model.

Resumable: ``<out>/checkpoint.pt`` (weights, EMA, optimizer, step, the place in the learning-rate
schedule) is written with every safety export and at the end; the same command with ``--resume
<out>/checkpoint.pt`` continues the schedule where it stopped (``--time-budget`` then bounds that
sitting). With ``--hold-out`` the log reports the EMA's recall and precision on the held-out tenth of
the training photos at the first safety export after every ``--eval-every`` seconds, next to samples/s
and the losses every 50 steps.

Example (the command that produced models/plate_detector.onnx is in its model card):
    python scripts/train_detector.py --data ../shared/datasets --device cuda \\
        --time-budget 380 --out runs/det --workers 8
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import text_teacher
from onnx_weights import freeze_batchnorm, initializers, load_folded_convs
from plate_crops import held_out_photo, negative_photos, plate_images

from alprd import synth

STRIDE = 4
PAD_VALUE = 114
T0 = time.time()


def log(msg: str, fh=None) -> None:
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    if fh is not None:
        fh.write(line + "\n")
        fh.flush()


# --------------------------------------------------------------------------- model

def cbr(i: int, o: int, k: int = 3, s: int = 1, g: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class DS(nn.Module):
    """Depthwise kxk + pointwise 1x1, residual when shapes allow."""

    def __init__(self, i: int, o: int, stride: int = 1, k: int = 3) -> None:
        super().__init__()
        self.dw = cbr(i, i, k, stride, i)
        self.pw = nn.Sequential(nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o))
        self.res = stride == 1 and i == o

    def forward(self, x):
        y = self.pw(self.dw(x))
        return F.relu(y + x) if self.res else F.relu(y)


class PlateNet(nn.Module):
    """Backbone to stride 32, FPN merged to stride 4, 5-channel head (heat logit + 4 log-distances)."""

    def __init__(self, widths=(16, 32, 64, 96, 128), fpn: int = 48, head: int = 32, extra: int = 0,
                 text: bool = False) -> None:
        """``extra``: residual blocks added to each of the stride 8, 16 and 32 stages (cheap: few pixels).
        ``text``: a 1x1 conv on the stride-4 features predicting the text teacher's map (training only,
        not exported)."""
        super().__init__()
        c0, c1, c2, c3, c4 = widths
        self.extra = extra
        self.stem = cbr(3, c0, 3, 2)
        self.s4 = nn.Sequential(DS(c0, c1, 2), DS(c1, c1))
        self.s8 = nn.Sequential(DS(c1, c2, 2), *[DS(c2, c2) for _ in range(1 + extra)])
        self.s16 = nn.Sequential(DS(c2, c3, 2, 5), *[DS(c3, c3, 1, 5) for _ in range(1 + extra)])
        self.s32 = nn.Sequential(DS(c3, c4, 2, 5), *[DS(c4, c4, 1, 5) for _ in range(1 + extra)])
        self.l32, self.l16, self.l8, self.l4 = cbr(c4, fpn, 1), cbr(c3, fpn, 1), cbr(c2, fpn, 1), cbr(c1, head, 1)
        self.m16, self.m8, self.r8, self.m4 = DS(fpn, fpn), DS(fpn, fpn), cbr(fpn, head, 1), DS(head, head)
        self.head = DS(head, head)
        self.out = nn.Conv2d(head, 5, 1)
        nn.init.constant_(self.out.bias, 0.0)
        with torch.no_grad():
            self.out.bias[0] = -4.6  # heatmap prior 0.01
            self.out.weight.mul_(0.1)
        self.text = nn.Conv2d(head, 1, 1) if text else None

    def features(self, x):
        """The merged stride-4 features that the plate head (and the text head) read."""
        x = (x - 127.5) * (1 / 64.0)  # input: BGR float 0..255
        x = self.stem(x)
        c4 = self.s4(x)
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")
        p = self.m16(self.l16(c16) + up(self.l32(c32)))
        p = self.m8(self.l8(c8) + up(p))
        return self.m4(self.l4(c4) + up(self.r8(p)))

    def forward(self, x):
        return self.out(self.head(self.features(x)))  # raw: [heat logit, log(dist/8) x4]


class ExportWrapper(nn.Module):
    """What goes into the ONNX file: sigmoid heatmap and distances in input pixels."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image):
        o = self.net(image)
        return torch.cat([torch.sigmoid(o[:, :1]), torch.exp(o[:, 1:].clamp(max=6.0)) * 8.0], 1)


def load_onnx_weights(model: PlateNet, path: str) -> None:
    """Start from an exported plate_detector.onnx, whose convolutions have the batch norms folded in.

    Train such a model with its batch norms in eval mode (``freeze_batchnorm``): their
    statistics describe nothing any more (``onnx_weights``).
    """
    g, init = initializers(path)
    load_folded_convs(g, init, model, path)


def deepen_from_onnx(model: PlateNet, path: str) -> None:
    """Start a model with extra blocks from an exported one without them (Net2Net-style deepening).

    The shared layers take the exported weights; each new residual block gets a zero
    pointwise convolution, so it adds nothing at first and the deeper model starts out
    computing exactly what the exported one does, then learns from there.
    """
    base = PlateNet()
    load_onnx_weights(base, path)
    missing = set(model.load_state_dict(base.state_dict(), strict=False).missing_keys)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, DS) and f"{name}.pw.0.weight" in missing:
                mod.pw[0].weight.zero_()


# --------------------------------------------------------------------------- data

def read_yolo(label_path: str, w: int, h: int) -> np.ndarray:
    boxes = []
    try:
        text = Path(label_path).read_text()
    except FileNotFoundError:
        return np.zeros((0, 4), np.float32)
    for line in text.split("\n"):
        p = line.split()
        if len(p) != 5 or p[0] != "0":
            continue
        cx, cy, bw, bh = (float(v) for v in p[1:])
        boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
    return np.array(boxes, np.float32).reshape(-1, 4)


def load_split(root: Path, split: str, size: int = 640):
    """All images of a split decoded (resized to size x size if needed) and their plate boxes."""
    files = sorted(glob.glob(str(root / split / "images" / "*.jpg")))
    imgs, boxes = [], []
    for f in files:
        im = cv2.imread(f, cv2.IMREAD_COLOR)
        if im is None:
            continue
        h, w = im.shape[:2]
        lab = str(Path(f).parent.parent / "labels" / (Path(f).stem + ".txt"))
        b = read_yolo(lab, w, h)
        if (h, w) != (size, size):
            b = b * np.array([size / w, size / h, size / w, size / h], np.float32)
            im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        imgs.append(im)
        boxes.append(b)
    arr = np.stack(imgs) if imgs else np.zeros((0, size, size, 3), np.uint8)
    return arr, boxes, files


def square_crop(im: np.ndarray | None, size: int, rng: np.random.Generator) -> np.ndarray | None:
    """A random square part of ``im`` (the whole height or width), resized to size x size."""
    if im is None:
        return None
    h, w = im.shape[:2]
    side = min(h, w)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return cv2.resize(im[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)


def random_plate(rng: np.random.Generator) -> np.ndarray:
    return synth.render_plate(synth.random_plate_text(rng), rng)


def box_affine(boxes: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes after an affine map (bounding box of the mapped corners)."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    x1, y1, x2, y2 = boxes.T
    pts = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1), np.stack([x2, y2], 1)], 1)
    pts = pts @ M[:, :2].T + M[:, 2]
    lo, hi = pts.min(1), pts.max(1)  # small rotations only, so the inflation stays small
    return np.concatenate([lo, hi], 1).astype(np.float32)


class TrainSet(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, boxes: list[np.ndarray], crop: int, epoch_len: int,
                 p_synth_frame: float = 0.2, p_mosaic: float = 0.3, p_paste: float = 0.5,
                 real_plates: list[np.ndarray] | None = None, p_real: float = 0.0,
                 text_maps: np.ndarray | None = None) -> None:
        self.images, self.boxes, self.crop, self.epoch_len = images, boxes, crop, epoch_len
        self.text_maps = text_maps  # the text teacher's map of each image (text_teacher.py), or None
        self.p_synth_frame, self.p_mosaic, self.p_paste = p_synth_frame, p_mosaic, p_paste
        self.real_plates, self.p_real = real_plates or [], p_real  # real crops pasted instead of rendered ones
        self.rng = np.random.default_rng()
        self.scenes: list[np.ndarray] = []
        self.scene_uses = 0

    def __len__(self) -> int:
        return self.epoch_len

    # -- sources -------------------------------------------------------------
    def _warp_real(self, idx: int, out_w: int, out_h: int, scale: float, rng):
        """(image, boxes, teacher map on the stride-4 grid or None) of photo ``idx`` after a random affine."""
        img, boxes = self.images[idx], self.boxes[idx]
        h, w = img.shape[:2]
        sx = scale * math.exp(rng.uniform(-0.25, 0.25))
        sy = scale * math.exp(rng.uniform(-0.25, 0.25))
        ang = math.radians(rng.uniform(-7, 7)) if rng.random() < 0.5 else 0.0
        flip = rng.random() < 0.5
        # choose a random source point to land at the output centre (focus on plates half the time)
        if len(boxes) and rng.random() < 0.6:
            b = boxes[int(rng.integers(len(boxes)))]
            px = (b[0] + b[2]) / 2 + rng.uniform(-0.4, 0.4) * out_w / sx
            py = (b[1] + b[3]) / 2 + rng.uniform(-0.4, 0.4) * out_h / sy
        else:
            px, py = rng.uniform(0, w), rng.uniform(0, h)
        ca, sa = math.cos(ang), math.sin(ang)
        A = np.array([[sx * ca, -sy * sa], [sx * sa, sy * ca]], np.float64)
        if flip:
            A = A @ np.array([[-1, 0], [0, 1]], np.float64)
        t = np.array([out_w / 2, out_h / 2]) - A @ np.array([px, py])
        M = np.concatenate([A, t[:, None]], 1)
        out = cv2.warpAffine(img, M, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
        tmap = None if self.text_maps is None else text_teacher.warp_map(self.text_maps[idx], M, out_w, out_h)
        return out, box_affine(boxes, M), tmap

    def _synth_frame(self, rng) -> tuple[np.ndarray, np.ndarray]:
        """A 1080p demo-camera-like frame with cars and plates, as the camera draws it."""
        if len(self.scenes) < 6 or self.scene_uses > 40:
            scene = synth.street_scene(1920, 1080, rng)
            if len(self.scenes) >= 6:
                self.scenes[int(rng.integers(len(self.scenes)))] = scene
            else:
                self.scenes.append(scene)
            self.scene_uses = 0
        self.scene_uses += 1
        frame = self.scenes[int(rng.integers(len(self.scenes)))].copy()
        n = int(rng.integers(1, 5))
        cars, boxes = [], []
        for _ in range(n * 4):
            if len(boxes) >= n:
                break
            pw = int(rng.uniform(60, 200)) if rng.random() < 0.75 else int(rng.uniform(25, 60))
            cw, chh = int(pw * 4.5), int(pw * 2.6)
            cx, cy = int(rng.uniform(pw, 1920 - pw)), int(rng.uniform(300, 1080 - pw // 3))
            rect = (cx - cw // 2, cy - int(chh * 0.7), cx + cw // 2, cy + int(chh * 0.3))
            if any(not (rect[2] < r[0] or r[2] < rect[0] or rect[3] < r[1] or r[3] < rect[1]) for r in cars):
                continue
            x1, y1, x2, y2 = synth.paste_plate_on_car(frame, random_plate(rng), (cx, cy), pw, rng)
            if x2 - x1 >= 4 and y2 - y1 >= 2:
                cars.append(rect)
                boxes.append([x1, y1, x2, y2])
        return frame, np.array(boxes, np.float32).reshape(-1, 4)

    def _paste_small(self, img: np.ndarray, boxes: np.ndarray, rng) -> np.ndarray:
        """Paste 1-3 plates (mostly small) away from ``boxes``; returns the new boxes. A plate is rendered,
        or with ``p_real`` a real crop, which keeps its own proportions."""
        H, W = img.shape[:2]
        new = []
        for _ in range(int(rng.integers(1, 4))):
            pw = int(math.exp(rng.uniform(math.log(8), math.log(90))))
            if self.real_plates and rng.random() < self.p_real:
                plate = self.real_plates[int(rng.integers(len(self.real_plates)))]
                aspect = plate.shape[1] / plate.shape[0] * math.exp(rng.uniform(-0.15, 0.15))
            else:
                plate = random_plate(rng)
                aspect = rng.uniform(1.7, 2.3) if rng.random() < 0.7 else rng.uniform(2.3, 4.5)
            ph = max(3, round(pw / aspect))
            if pw + 2 >= W or ph + 2 >= H:
                continue
            x1, y1 = int(rng.integers(0, W - pw)), int(rng.integers(0, H - ph))
            cand = np.array([x1, y1, x1 + pw, y1 + ph], np.float32)
            allb = np.concatenate([boxes, np.array(new, np.float32).reshape(-1, 4)])
            if len(allb):
                ix = np.minimum(allb[:, 2], cand[2] + 4) - np.maximum(allb[:, 0], cand[0] - 4)
                iy = np.minimum(allb[:, 3], cand[3] + 4) - np.maximum(allb[:, 1], cand[1] - 4)
                if np.any((ix > 0) & (iy > 0)):
                    continue
            if rng.random() < 0.3:  # a car body around it, like the demo camera
                cx, cy = x1 + pw // 2, y1 + ph // 2
                b = synth.paste_plate_on_car(img, plate, (cx, cy), pw, rng)
                if b[2] - b[0] >= 4:
                    new.append(list(b))
                continue
            small = cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                gain = rng.uniform(0.5, 1.2)
                small = np.clip(small.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            img[y1:y1 + ph, x1:x1 + pw] = small
            new.append([x1, y1, x1 + pw, y1 + ph])
        return np.array(new, np.float32).reshape(-1, 4)

    # -- photometric ---------------------------------------------------------
    def _photometric(self, img: np.ndarray, rng) -> np.ndarray:
        if rng.random() < 0.3:
            k = int(rng.choice([3, 5]))
            img = cv2.GaussianBlur(img, (k, k), 0)
        if rng.random() < 0.8:  # brightness/contrast/colour cast through a per-channel lookup table
            gain = rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, 3)
            lut = np.arange(256, dtype=np.float32)[:, None] * gain[None, :] + rng.uniform(-30, 30)
            img = cv2.LUT(img, np.clip(lut, 0, 255).astype(np.uint8).reshape(256, 1, 3))
        if rng.random() < 0.1:
            img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        if rng.random() < 0.3:
            H, W = img.shape[:2]
            if getattr(self, "_noise", None) is None or self._noise.shape[0] < H + 64 or self._noise.shape[1] < W + 64:
                self._noise = np.clip(rng.normal(0, 4, (H + 64, W + 64, 3)), -127, 127).astype(np.int16)
            oy, ox = int(rng.integers(0, 64)), int(rng.integers(0, 64))
            k = int(rng.integers(1, 3))
            img = np.clip(img.astype(np.int16) + self._noise[oy:oy + H, ox:ox + W] * k, 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
            if ok:
                img = cv2.imdecode(enc, cv2.IMREAD_COLOR)
        return img

    # -- targets -------------------------------------------------------------
    def _targets(self, boxes: np.ndarray, W: int, H: int, ignore_boxes=None):
        fw, fh = W // STRIDE, H // STRIDE
        heat = np.zeros((fh, fw), np.float32)
        ignore = np.zeros((fh, fw), np.float32)
        reg = np.zeros((4, fh, fw), np.float32)
        regw = np.zeros((fh, fw), np.float32)
        boxes = boxes.reshape(-1, 4)
        # clip; drop or ignore the bad ones
        orig_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        cb = boxes.copy()
        cb[:, 0::2] = cb[:, 0::2].clip(0, W)
        cb[:, 1::2] = cb[:, 1::2].clip(0, H)
        bw, bh = cb[:, 2] - cb[:, 0], cb[:, 3] - cb[:, 1]
        vis = (bw.clip(0) * bh.clip(0)) / np.maximum(orig_area, 1e-6)
        good = (vis >= 0.6) & (bw >= 4) & (bh >= 2.5)
        bad = ~good & (bw > 0) & (bh > 0)
        extra = ignore_boxes if ignore_boxes is not None else np.zeros((0, 4), np.float32)
        for b in np.concatenate([cb[bad], extra]).clip(0, max(W, H)):
            x1, y1 = int(b[0] // STRIDE), int(b[1] // STRIDE)
            x2, y2 = math.ceil(b[2] / STRIDE), math.ceil(b[3] / STRIDE)
            ignore[max(0, y1 - 1):y2 + 1, max(0, x1 - 1):x2 + 1] = 1
        gb = cb[good]
        order = np.argsort(-(gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1]))  # large first, small overwrite
        xs = (np.arange(fw, dtype=np.float32) + 0.5) * STRIDE
        ys = (np.arange(fh, dtype=np.float32) + 0.5) * STRIDE
        for b in gb[order]:
            w, h = b[2] - b[0], b[3] - b[1]
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            ci, cj = min(fh - 1, int(cy // STRIDE)), min(fw - 1, int(cx // STRIDE))
            pcx, pcy = (cj + 0.5) * STRIDE, (ci + 0.5) * STRIDE
            sx, sy = max(0.54 * w / 6, 1.0), max(0.54 * h / 6, 1.0)  # in pixels
            rx, ry = math.ceil(3 * sx / STRIDE) + 1, math.ceil(3 * sy / STRIDE) + 1
            i0, i1, j0, j1 = max(0, ci - ry), min(fh, ci + ry + 1), max(0, cj - rx), min(fw, cj + rx + 1)
            gx = np.exp(-((xs[j0:j1] - pcx) ** 2) / (2 * sx * sx))
            gy = np.exp(-((ys[i0:i1] - pcy) ** 2) / (2 * sy * sy))
            g = gy[:, None] * gx[None, :]
            g[ci - i0, cj - j0] = 1.0
            np.maximum(heat[i0:i1, j0:j1], g, out=heat[i0:i1, j0:j1])
            # regression area: cells whose centres are inside the central part of the box
            inside = ((np.abs(xs[j0:j1] - cx) <= max(w * 0.27, STRIDE * 0.75))[None, :]
                      & (np.abs(ys[i0:i1] - cy) <= max(h * 0.27, STRIDE * 0.75))[:, None])
            inside[ci - i0, cj - j0] = True
            wgt = np.where(inside, g, 0.0)
            wgt = wgt / max(wgt.sum(), 1e-6) * math.log(max(w * h, 4.0))
            sub = wgt > 0
            regw[i0:i1, j0:j1][sub] = wgt[sub]
            for k, v in enumerate(b):
                reg[k, i0:i1, j0:j1][sub] = v
        return heat, ignore, reg, regw

    # -- one sample ----------------------------------------------------------
    def __getitem__(self, _index: int):
        rng = self.rng
        C = self.crop
        r = rng.random()
        ignore_boxes = np.zeros((0, 4), np.float32)
        G = C // STRIDE
        text, text_w = np.zeros((G, G), np.float32), np.zeros((G, G), np.float32)  # teacher target, its weight
        if r < self.p_synth_frame:
            frame, boxes = self._synth_frame(rng)
            # the detector sees a 1080p frame at 640..960 wide; jitter around that
            s = rng.uniform(640, 1024) / 1920 * math.exp(rng.uniform(-0.2, 0.2))
            sw, sh = round(1920 * s), round(1080 * s)
            small = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_LINEAR)
            ox, oy = int(rng.integers(0, max(0, sw - C) + 1)), int(rng.integers(0, max(0, sh - C) + 1))
            part = small[oy:oy + C, ox:ox + C]
            img = np.full((C, C, 3), PAD_VALUE, np.uint8)
            img[:part.shape[0], :part.shape[1]] = part
            boxes = boxes * np.float32(s) - np.array([ox, oy, ox, oy], np.float32)
            if rng.random() < 0.5:
                img = img[:, ::-1]
                boxes = np.stack([C - boxes[:, 2], boxes[:, 1], C - boxes[:, 0], boxes[:, 3]], 1)
        elif r < self.p_synth_frame + self.p_mosaic and len(self.images):
            img = np.full((C, C, 3), PAD_VALUE, np.uint8)
            allb, ign = [], []
            cx, cy = int(C * rng.uniform(0.3, 0.7)), int(C * rng.uniform(0.3, 0.7))
            for (x0, y0, x1, y1) in ((0, 0, cx, cy), (cx, 0, C, cy), (0, cy, cx, C), (cx, cy, C, C)):
                tw, th = x1 - x0, y1 - y0
                if tw < 8 or th < 8:
                    continue
                idx = int(rng.integers(len(self.images)))
                s = math.exp(rng.uniform(math.log(0.3), math.log(1.2)))
                tile, b, tmap = self._warp_real(idx, tw, th, s, rng)
                img[y0:y1, x0:x1] = tile
                if tmap is not None:
                    gy, gx = y0 // STRIDE, x0 // STRIDE
                    part = tmap[:G - gy, :G - gx]
                    text[gy:gy + part.shape[0], gx:gx + part.shape[1]] = part
                    text_w[gy:gy + part.shape[0], gx:gx + part.shape[1]] = 1.0
                if len(b):
                    cb = b.copy()
                    cb[:, 0::2] = cb[:, 0::2].clip(0, tw)
                    cb[:, 1::2] = cb[:, 1::2].clip(0, th)
                    area = lambda q: (q[:, 2] - q[:, 0]).clip(0) * (q[:, 3] - q[:, 1]).clip(0)
                    ok = area(cb) >= 0.6 * area(b)
                    off = np.array([x0, y0, x0, y0], np.float32)
                    allb.append(cb[ok] + off)
                    ign.append(cb[~ok & (area(cb) > 0)] + off)
            boxes = np.concatenate(allb) if allb else np.zeros((0, 4), np.float32)
            ignore_boxes = np.concatenate(ign) if ign else np.zeros((0, 4), np.float32)
        elif len(self.images):
            idx = int(rng.integers(len(self.images)))
            s = math.exp(rng.uniform(math.log(0.45), math.log(2.2)))
            img, boxes, tmap = self._warp_real(idx, C, C, s, rng)
            if tmap is not None:
                text, text_w = tmap, np.ones_like(tmap)
        else:
            frame, boxes = self._synth_frame(rng)
            s = C / 1920 * 1.5
            img = cv2.resize(frame, None, fx=s, fy=s)[:C, :C]
            img = cv2.copyMakeBorder(img, 0, C - img.shape[0], 0, C - img.shape[1], cv2.BORDER_CONSTANT,
                                     value=(PAD_VALUE,) * 3)
            boxes = boxes * s
        img = np.ascontiguousarray(img)
        boxes = boxes.astype(np.float32).reshape(-1, 4)
        if rng.random() < self.p_paste:
            new = self._paste_small(img, np.concatenate([boxes, ignore_boxes]), rng)
            boxes = np.concatenate([boxes, new])
            for x1, y1, x2, y2 in new:  # the teacher never saw these pasted plates
                text_w[max(0, int(y1) // STRIDE - 1):int(y2) // STRIDE + 2,
                       max(0, int(x1) // STRIDE - 1):int(x2) // STRIDE + 2] = 0.0
        img = self._photometric(img, rng)
        heat, ignore, reg, regw = self._targets(boxes, C, C, ignore_boxes)
        return (torch.from_numpy(img.transpose(2, 0, 1).copy()), torch.from_numpy(heat[None]),
                torch.from_numpy(ignore[None]), torch.from_numpy(reg), torch.from_numpy(regw[None]),
                torch.from_numpy(text[None]), torch.from_numpy(text_w[None]))


def worker_init(worker_id: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed % (2**32))


# --------------------------------------------------------------------------- loss

def losses(raw: torch.Tensor, heat: torch.Tensor, ignore: torch.Tensor, reg: torch.Tensor, regw: torch.Tensor):
    raw = raw.float()
    logit = raw[:, :1]
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = (heat >= 0.999).float()
    neg_w = (1 - heat).pow(4) * (1 - ignore) * (1 - pos)
    pos_loss = -(torch.log(p) * (1 - p).pow(2) * pos).sum()
    neg_loss = -(torch.log(1 - p) * p.pow(2) * neg_w).sum()
    npos = pos.sum().clamp(min=1.0)
    hm = (pos_loss + neg_loss) / npos

    B, _, H, W = raw.shape
    mask = regw[:, 0] > 0
    if mask.any():
        dist = torch.exp(raw[:, 1:].clamp(max=6.0)) * 8.0
        xs = (torch.arange(W, device=raw.device, dtype=torch.float32) + 0.5) * STRIDE
        ys = (torch.arange(H, device=raw.device, dtype=torch.float32) + 0.5) * STRIDE
        gx = xs.view(1, 1, W).expand(B, H, W)[mask]
        gy = ys.view(1, H, 1).expand(B, H, W)[mask]
        d = dist.permute(0, 2, 3, 1)[mask]
        t = reg.permute(0, 2, 3, 1)[mask]
        w = regw[:, 0][mask]
        px1, py1, px2, py2 = gx - d[:, 0], gy - d[:, 1], gx + d[:, 2], gy + d[:, 3]
        tx1, ty1, tx2, ty2 = t.unbind(1)
        iw = (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
        ih = (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0)
        inter = iw * ih
        union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
        iou = inter / union.clamp(min=1e-6)
        cw = torch.maximum(px2, tx2) - torch.minimum(px1, tx1)
        ch = torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
        carea = (cw * ch).clamp(min=1e-6)
        giou = iou - (carea - union) / carea
        box = ((1 - giou) * w).sum() / w.sum().clamp(min=1e-6)
    else:
        box = raw.sum() * 0.0
    return hm, box


# --------------------------------------------------------------------------- export / eval

def export_onnx(model: nn.Module, path: Path, input_size: int, fh=None) -> None:
    model = model.eval()
    wrapper = ExportWrapper(model).cpu().eval()
    dummy = torch.full((1, 3, 384, 640), 114.0)
    tmp = path.with_suffix(".tmp.onnx")
    kw = {"input_names": ["image"], "output_names": ["out"], "opset_version": 17,
          "dynamic_axes": {"image": {0: "n", 2: "h", 3: "w"}, "out": {0: "n", 2: "oh", 3: "ow"}}}
    try:
        torch.onnx.export(wrapper, (dummy,), str(tmp), dynamo=False, **kw)
    except TypeError:  # very old torch without the dynamo flag
        torch.onnx.export(wrapper, (dummy,), str(tmp), **kw)
    import onnx

    m = onnx.load(str(tmp))
    meta = {"stride": str(STRIDE), "input_size": str(input_size), "pad_value": str(PAD_VALUE),
            "input": "float32 BGR 0..255 NCHW, letterboxed top-left, sides multiple of 32",
            "output": "[N,5,H/4,W/4]: sigmoid plate-centre heatmap, then left/top/right/bottom distances "
                      "(input pixels) from cell centre ((j+0.5)*4, (i+0.5)*4)",
            "producer": "alprd scripts/train_detector.py"}
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))
    os.replace(tmp, path)
    log(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB)", fh)


def evaluate_split(onnx_path: Path, data_root: Path, splits=("valid", "test"), input_size: int = 640,
                   threshold: float = 0.4) -> dict:
    """Recall and precision of an exported model on plate-detect splits (reported after training, never chosen on)."""
    photos = []
    for split in splits:
        if (data_root / split / "images").is_dir():
            imgs, boxes, _ = load_split(data_root, split)
            photos += list(zip(imgs, boxes))
    return evaluate_photos(onnx_path, photos, input_size, threshold)


def evaluate_photos(onnx_path: Path, photos: list, input_size: int = 640, threshold: float = 0.4) -> dict:
    """Recall (IoU >= 0.5), precision and small-plate recall of an exported model on (image, boxes) pairs."""
    from alprd.vision.detector import OnnxDetector

    det = OnnxDetector(onnx_path, threads=max(1, min(4, os.cpu_count() or 1)), score_threshold=0.05,
                       input_size=input_size)
    tp = fp = npl = 0
    small_tp = small_n = 0
    for im, gt in photos:
        dets = [d for d in det.detect(im) if d.score >= threshold]
        matched = np.zeros(len(gt), bool)
        for d in dets:
            if len(gt) == 0:
                fp += 1
                continue
            ix = np.minimum(gt[:, 2], d.x2) - np.maximum(gt[:, 0], d.x1)
            iy = np.minimum(gt[:, 3], d.y2) - np.maximum(gt[:, 1], d.y1)
            inter = ix.clip(0) * iy.clip(0)
            iou = inter / ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) + d.width * d.height - inter)
            iou[matched] = 0
            j = int(iou.argmax())
            if iou[j] >= 0.5:
                matched[j] = True
                tp += 1
            else:
                fp += 1
        npl += len(gt)
        small = (gt[:, 2] - gt[:, 0]) < 40 / 3
        small_n += int(small.sum())
        small_tp += int((matched & small).sum())
    return {"plates": npl, "recall": tp / max(npl, 1), "precision": tp / max(tp + fp, 1),
            "small_plates": small_n, "small_recall": small_tp / max(small_n, 1), "threshold": threshold,
            "input_size": input_size}


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"),
                    help="folder holding plate-detect/ (default ../shared/datasets)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--time-budget", type=float, default=380.0, help="seconds of wall time for the whole run")
    ap.add_argument("--out", default="runs/det", help="output folder (.onnx, train_log.txt, metrics.json)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=0, help="batch size (0: 48 on cuda, 8 on cpu)")
    ap.add_argument("--crop", type=int, default=512, help="training crop side (multiple of 32)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--input-size", type=int, default=640, help="default inference size stored in the ONNX file")
    ap.add_argument("--export-every", type=float, default=120.0, help="seconds between safety exports")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default="", help="start from this state_dict (.pt) or exported .onnx, to fine-tune")
    ap.add_argument("--p-synth", type=float, default=0.2, help="share of synthetic 1080p demo-camera frames")
    ap.add_argument("--p-mosaic", type=float, default=0.3, help="share of 4-image mosaics")
    ap.add_argument("--p-paste", type=float, default=0.5, help="chance of pasting small synthetic plates")
    ap.add_argument("--hold-out", action="store_true",
                    help="leave out the tenth of the training photos that train_verifier.py holds out "
                         "(sha1(file name) %% 10 == 0), so the cascade can be judged on them")
    ap.add_argument("--negatives", type=int, default=0,
                    help="add this many plate-free photos of negatives/ (design half) to the real images")
    ap.add_argument("--p-real", type=float, default=0.0,
                    help="chance that a pasted plate is a real crop (us/br-plate-crops, plate-crops-detect)")
    ap.add_argument("--resume", default="",
                    help="continue the run saved in this checkpoint.pt (weights, EMA, optimizer, step, and the place "
                         "in the learning-rate schedule); --time-budget then bounds this sitting only")
    ap.add_argument("--eval-every", type=float, default=600.0,
                    help="seconds between held-out recall reports (with --hold-out: the EMA on the held-out "
                         "tenth, at the next safety export)")
    ap.add_argument("--text-teacher", type=float, default=0.0,
                    help="weight of the second task: predicting PP-OCRv4's text map (text_teacher.py); 0 = off")
    ap.add_argument("--teacher-cache", default=str(ROOT / ".data" / "text_maps.npz"),
                    help="where the teacher's maps of the training images are kept between runs")
    ap.add_argument("--extra-blocks", type=int, default=0,
                    help="residual blocks added to the stride 8/16/32 stages; "
                         "with an .onnx --init they start as no-ops")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # before any OpenCV call: its thread pool does not survive the fork into workers

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / "train_log.txt", "a")  # noqa: SIM115 - kept open for the whole run
    log(f"args: {vars(args)}", fh)
    deadline = T0 + args.time_budget
    train_end = deadline - 12.0  # leave time for the final export
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        log("CUDA requested but not available; using cpu", fh)
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        log(f"gpu: {torch.cuda.get_device_name(0)} torch {torch.__version__}", fh)

    data_root = Path(args.data) / "plate-detect"
    images, boxes, files = load_split(data_root, "train")
    held_out = []  # (image, boxes) of the held-out tenth: the periodic recall report
    if args.hold_out:
        keep = [not held_out_photo(f) for f in files]
        held_out = [(im, b) for im, b, k in zip(images, boxes, keep, strict=True) if not k]
        images, boxes = images[np.array(keep, bool)], [b for b, k in zip(boxes, keep, strict=True) if k]
    log(f"train images: {len(images)} with {sum(len(b) for b in boxes)} plates from {data_root / 'train'}", fh)
    if len(images) == 0:
        log("WARNING: no real training images found; training on synthetic frames only", fh)

    if args.negatives:
        negs = [square_crop(cv2.imread(str(f), cv2.IMREAD_COLOR), images.shape[1], np.random.default_rng(args.seed))
                for f in negative_photos(Path(args.data), half=0)[:args.negatives]]  # the other half stays unseen
        negs = [n for n in negs if n is not None]
        images = np.concatenate([images, np.stack(negs)]) if negs else images
        boxes = boxes + [np.zeros((0, 4), np.float32)] * len(negs)
        log(f"plus {len(negs)} plate-free photos of negatives/ (design half)", fh)
    tmaps = None
    if args.text_teacher:
        tmaps = text_teacher.text_maps(images, Path(args.teacher_cache), log=lambda m: log(m, fh))
        log(f"text teacher maps of {len(tmaps)} images (weight {args.text_teacher}, cache {args.teacher_cache})", fh)
    real = plate_images(Path(args.data), detect_crops=True, max_width=160) if args.p_real else []
    if real:
        log(f"{len(real)} real plate crops to paste (p {args.p_real})", fh)
    batch = args.batch or (48 if device.type == "cuda" else 8)
    ds = TrainSet(images, boxes, args.crop, epoch_len=10**7, p_synth_frame=args.p_synth, p_mosaic=args.p_mosaic,
                  p_paste=args.p_paste, real_plates=real, p_real=args.p_real, text_maps=tmaps)
    dl = torch.utils.data.DataLoader(
        ds, batch_size=batch, num_workers=args.workers, worker_init_fn=worker_init if args.workers else None,
        pin_memory=device.type == "cuda", drop_last=True, persistent_workers=args.workers > 0,
        prefetch_factor=4 if args.workers else None)
    if args.workers == 0:
        ds.rng = np.random.default_rng(args.seed)

    with_text = args.text_teacher > 0
    model = PlateNet(extra=args.extra_blocks, text=with_text).to(device)
    from_onnx = args.init.endswith(".onnx")
    if from_onnx:
        deepen_from_onnx(model, args.init)
        log(f"initialised from {args.init} (folded batch norms: kept in eval mode)", fh)
    elif args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        log(f"initialised from {args.init}", fh)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    ema = PlateNet(extra=args.extra_blocks, text=with_text).to(device)
    ema.load_state_dict(model.state_dict())
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    decay_params = [p for n, p in model.named_parameters() if p.ndim > 1]
    other_params = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay_params, "weight_decay": 5e-4},
                             {"params": other_params, "weight_decay": 0.0}], lr=args.lr)
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    onnx_path = out / "plate_detector.onnx"
    t_start = time.time()
    span, done_s, step, n_seen = max(1.0, train_end - t_start), 0.0, 0, 0  # done_s: schedule seconds already run
    if args.resume:
        ck = torch.load(args.resume, map_location=device)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        scaler.load_state_dict(ck["scaler"])
        span, done_s, step, n_seen = ck["span"], ck["done_s"], ck["step"], ck["seen"]
        train_end = min(train_end, t_start + span - done_s)
        torch.manual_seed(args.seed + step)  # fresh samples, not the first sitting's again (workers seed from it)
        if args.workers == 0:
            ds.rng = np.random.default_rng([args.seed, step])
        log(f"resumed {args.resume}: step {step}, {n_seen} samples, "
            f"{done_s:.0f} of {span:.0f} s of the schedule done", fh)

    def save_checkpoint() -> None:
        """Everything a later ``--resume`` needs, written atomically next to the model."""
        tmp = out / "checkpoint.pt.tmp"
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "scaler": scaler.state_dict(), "span": span, "done_s": done_s + time.time() - t_start,
                    "step": step, "seen": n_seen, "args": vars(args)}, tmp)
        os.replace(tmp, out / "checkpoint.pt")

    last_export = last_eval = t_start
    hm_avg = box_avg = text_avg = 0.0
    status = "ok"
    it = iter(dl)
    try:
        for imgs, heat, ignore, reg, regw, text, text_w in it:
            now = time.time()
            if now >= train_end:
                break
            frac = (done_s + now - t_start) / span
            lr = args.lr * (frac / 0.03 if frac < 0.03 else 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
            lr = max(lr, args.lr * 0.01)
            for g in opt.param_groups:
                g["lr"] = lr
            imgs = imgs.to(device, non_blocking=True).float()
            if device.type == "cuda":
                imgs = imgs.contiguous(memory_format=torch.channels_last)
            heat, ignore = heat.to(device, non_blocking=True), ignore.to(device, non_blocking=True)
            reg, regw = reg.to(device, non_blocking=True), regw.to(device, non_blocking=True)
            model.train()
            if from_onnx:
                freeze_batchnorm(model)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                feats = model.features(imgs)
                raw = model.out(model.head(feats))
            hm, box = losses(raw, heat, ignore, reg, regw)
            loss = hm + 5.0 * box
            if with_text:
                text, text_w = text.to(device, non_blocking=True), text_w.to(device, non_blocking=True)
                tl = F.binary_cross_entropy_with_logits(model.text(feats).float(), text, weight=text_w,
                                                        reduction="sum") / text_w.sum().clamp(min=1.0)
                loss = loss + args.text_teacher * tl
                text_avg = 0.98 * text_avg + 0.02 * tl.item() if step > 1 else tl.item()
            if not torch.isfinite(loss):
                log(f"step {step}: non-finite loss, batch skipped", fh)
                opt.zero_grad(set_to_none=True)
                continue
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            scaler.step(opt)
            scaler.update()
            step += 1
            n_seen += imgs.shape[0]
            d = min(0.999, (1 + step) / (10 + step))
            with torch.no_grad():
                msd = model.state_dict()
                for k, v in ema.state_dict().items():
                    if v.dtype.is_floating_point:
                        v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
                    else:
                        v.copy_(msd[k])
            hm_avg = 0.98 * hm_avg + 0.02 * hm.item() if step > 1 else hm.item()
            box_avg = 0.98 * box_avg + 0.02 * box.item() if step > 1 else box.item()
            if step % 50 == 0 or step <= 3:
                el = time.time() - t_start
                log(f"step {step} seen {n_seen} ({n_seen / max(el, 1e-6):.0f} img/s) lr {lr:.2e} "
                    f"heat {hm_avg:.3f} giou {box_avg:.3f}" + (f" text {text_avg:.3f}" if with_text else ""), fh)
            if time.time() - last_export > args.export_every and time.time() < train_end - 30:
                try:
                    torch.save(ema.state_dict(), out / "plate_detector_ema.pt")
                    export_onnx(_cpu_copy(ema), onnx_path, args.input_size, fh)
                    save_checkpoint()
                    if held_out and time.time() - last_eval > args.eval_every:  # the model just exported
                        m = evaluate_photos(onnx_path, held_out)
                        log(f"step {step}: held-out tenth ({m['plates']} plates) recall {m['recall']:.3f} "
                            f"precision {m['precision']:.3f} at {m['threshold']} (EMA, input 640)", fh)
                        last_eval = time.time()
                except Exception:  # noqa: BLE001 - a crash must not lose the run
                    log("safety export failed:\n" + traceback.format_exc(), fh)
                last_export = time.time()
    except Exception:  # noqa: BLE001 - a crash must not lose the run
        status = "training crashed"
        log("TRAINING CRASHED, exporting what we have:\n" + traceback.format_exc(), fh)

    log(f"training stopped after {step} steps, {n_seen} samples", fh)
    try:  # stop the loader workers now, so that they neither eat CPU nor hang the exit
        del it, dl
    except Exception:  # noqa: BLE001, S110 - best effort; os._exit below ends them anyway
        pass
    torch.save(ema.state_dict(), out / "plate_detector_ema.pt")
    export_onnx(_cpu_copy(ema), onnx_path, args.input_size, fh)
    save_checkpoint()
    metrics = {"status": status, "steps": step, "samples": n_seen, "batch": batch, "crop": args.crop,
               "device": str(device), "train_seconds": round(time.time() - t_start, 1),
               "heat_loss": hm_avg, "giou_loss": box_avg}
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        o = sess.run(None, {"image": np.full((1, 3, 384, 640), 114, np.float32)})[0]
        metrics["onnx_check"] = f"loaded, output {list(o.shape)}"
        log(f"onnxruntime check: output {o.shape}", fh)
        if (data_root / "valid" / "images").is_dir() and time.time() < deadline + 15:
            for size in (640,):
                m = evaluate_split(onnx_path, data_root, input_size=size)
                metrics[f"eval_{size}"] = m
                log(f"eval valid+test @ {size}: {m}", fh)
        else:
            log("no valid split here (or no time left): evaluation skipped", fh)
    except Exception:  # noqa: BLE001 - a crash must not lose the run
        log("post-export check failed:\n" + traceback.format_exc(), fh)
        metrics["onnx_check"] = "failed"
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(f"done; wrote {out / 'metrics.json'}", fh)
    fh.close()
    return 0


def _cpu_copy(model: PlateNet) -> PlateNet:
    m = PlateNet(extra=model.extra)  # without the text head: it is not exported
    m.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()
                       if not k.startswith("text.")})
    return m.eval()


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # never hang on leftover DataLoader workers at interpreter exit
