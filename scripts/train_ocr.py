#!/usr/bin/env python3
"""Train the plate OCR (models/plate_ocr.onnx): a small CNN with a fixed-slot head.

Data, generated on the fly in DataLoader workers:
* real US crops (DATA/us-plate-crops, training split only), heavily augmented into
  detector-like crops (padding, shift, rotation, perspective, blur, noise, JPEG...);
* real Brazilian crops (DATA/br-plate-crops, training split only), same augmentation;
* synthetic plates from TrueType fonts (scripts/synth_plates.py, --fonts DIR);
* synthetic plates from alprd.synth.render_plate (Hershey fonts, the demo camera);
* non-plates (label: empty) so that the model says "nothing" with confidence.

Fixed split (never trained on): a US crop is validation when
sha1(file name) % 5 == 0; a Brazilian crop when sha1(plate text) % 5 == 0.

Training stops when --time-budget seconds (counted from the start of the script)
are nearly used, then the script evaluates on the validation split, exports ONNX
(opset 17, dynamic batch, softmax inside), checks it with onnxruntime through
alprd.vision.ocr.OnnxRecognizer and writes OUT/plate_ocr.onnx, OUT/plate_ocr.pt,
OUT/metrics.json and OUT/train.log.

Heads: ``--head slots`` (fixed 10 slots, reads two-line plates) or ``--head ctc``
(32 CTC steps, one line; generalises much better from 602 real crops).
``--init PT`` starts from a saved state dict (matching tensors only), ``--freeze N``
keeps the first N backbone modules fixed, ``--cache N`` (whole backbone frozen)
computes the features of N generated samples once and trains the head on them.

How models/plate_ocr.onnx was made (figures in models/plate_ocr.md):
  1. H200, 400 s:  --head slots --device cuda --workers 7 --batch 256 --reuse 2
  2. CPU, 1260 s:  --head ctc --init <1>/plate_ocr.pt --freeze 99 --cache 50000 --batch 64 --lr 2e-3
  3. CPU, 780 s:   --head ctc --init <2>/plate_ocr.pt --freeze 13 --batch 32 --lr 5e-4 --backbone-lr 0.5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from onnx_weights import freeze_batchnorm, initializers, load_folded_convs
from plate_context import ContextBank, in_context
from plate_crops import load_br, load_pseudo, load_us
from synth_plates import EuPlateRenderer, FontPlateRenderer, degrade_crop, hershey_plate, negative_crop

from alprd.config import VisionConfig
from alprd.plates import edit_distance
from alprd.vision.lines import split_lines
from alprd.vision.ocr import (
    ALPHABET,
    IMG_H,
    IMG_W,
    MAX_SLOTS,
    PAD,
    decode_ctc,
    decode_slots,
    input_width,
    resize_crop,
)
from alprd.vision.skew import level

NCLS = len(ALPHABET) + 1
LEVEL_DEGREES = VisionConfig().ocr_level_degrees  # the reader's default, read once, not per sample
PAD_IDX = len(ALPHABET)
WIDTHS = (16, 32, 64, 64, 128, 128, 128)
T0 = time.time()
_LOG = None


def log(*a) -> None:
    msg = f"[{time.time() - T0:7.1f}s] " + " ".join(str(x) for x in a)
    print(msg, flush=True)
    if _LOG is not None:
        _LOG.write(msg + "\n")
        _LOG.flush()


# ---------------------------------------------------------------- data
def encode(text: str) -> np.ndarray:
    y = np.full(MAX_SLOTS, PAD_IDX, np.int64)
    for i, c in enumerate(text[:MAX_SLOTS]):
        y[i] = ALPHABET.index(c)
    return y


class PlateStream(torch.utils.data.IterableDataset):
    """Endless batches (uint8 N,H,W,3 and int64 N,slots), mixed from all sources."""

    def __init__(self, us, br, font_dir, batch, seed, mix, pseudo=(), data=None, context_p=0.0, wide_aspect=0.0,
                 side_p=0.0):
        self.us, self.br, self.font_dir, self.batch, self.seed = us, br, font_dir, batch, seed
        self.side_p = side_p  # share of the plates in context seen from the side
        self.pseudo, self.data, self.context_p, self.wide_aspect = list(pseudo), data, context_p, wide_aspect
        names = ["us", "br", "pseudo", "font", "eu", "hershey", "neg"]
        have = {"us": bool(us), "br": bool(br), "pseudo": bool(self.pseudo)}
        p = np.array([mix.get(n, 0.0) if have.get(n, True) else 0.0 for n in names], float)
        self.names, self.p = names, p / p.sum()
        self.bank = None

    def _in_context(self, rng, fonts, tight):
        """With probability context_p: the tight plate pasted into a real surround, cut like a detector box;
        a share side_p of those seen from the side (rows sloped 4-18 degrees), levelled as the reader levels
        them (alprd.vision.skew) after the camera's blur and noise."""
        if self.bank is None or rng.random() >= self.context_p:
            return None
        side = rng.random() < self.side_p
        slope = rng.uniform(4, 18) * rng.choice([-1, 1]) if side else 0.0
        crop = in_context(tight, rng, self.bank, fonts.text_fonts, slope_degrees=slope)
        crop = degrade_crop(crop, rng, strength=0.5, out_h=(18, 80)) if rng.random() < 0.8 else crop
        return level(crop, LEVEL_DEGREES) if side else crop

    def sample(self, rng, fonts):
        kind = self.names[int(rng.choice(len(self.names), p=self.p))]
        if kind in ("us", "br", "pseudo"):
            src = {"us": self.us, "br": self.br, "pseudo": self.pseudo}[kind]
            _, img, text = src[int(rng.integers(len(src)))]
            r = rng.random()
            crop = self._in_context(rng, fonts, img)
            if crop is not None:
                pass
            elif r < 0.12:  # as is, like the validation crops
                crop = img
            else:
                crop = degrade_crop(img, rng, strength=0.8 if r < 0.6 else 1.0)
        elif kind in ("font", "eu", "hershey"):
            plate, lines = {"font": fonts.render, "eu": self.eu.render, "hershey": hershey_plate}[kind](rng)
            crop = self._in_context(rng, fonts, plate) if len(lines) == 1 else None
            if crop is None:
                crop = degrade_crop(plate, rng, strength=0.8 if kind == "hershey" else 1.0)
            text = lines[0]
            if len(lines) == 2:  # train on what inference reads: one line cut out by split_lines
                halves = split_lines(crop)
                if halves is None:
                    raise ValueError("two-line plate not split; draw again")
                k = int(rng.integers(2))
                crop, text = halves[k], lines[k]
        else:
            crop, text = negative_crop(rng), ""
        return crop, encode(text)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        cv2.setNumThreads(1)
        rng = np.random.default_rng([self.seed, wid])
        fonts = FontPlateRenderer(self.font_dir)
        self.eu = EuPlateRenderer(fonts)
        if self.context_p > 0 and self.data is not None:
            self.bank = ContextBank(self.data, seed=self.seed + wid)
        buckets: dict[int, list] = {}  # one batch per input width (--wide-aspect), filled as crops come
        while True:
            for _ in range(5):
                try:
                    crop, y = self.sample(rng, fonts)
                    width = input_width(crop.shape, self.wide_aspect)
                    x = resize_crop(crop, IMG_H, width)
                    break
                except Exception:  # noqa: BLE001, S112 - a rare bad draw must not kill the run
                    continue
            else:
                width, x, y = IMG_W, np.zeros((IMG_H, IMG_W, 3), np.uint8), encode("")
            batch = buckets.setdefault(width, [])
            batch.append((x, y))
            if len(batch) == self.batch:
                xs, ys = zip(*batch, strict=True)
                yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
                batch.clear()


def _worker_init(_):
    torch.set_num_threads(1)


# ---------------------------------------------------------------- model
def cbr(i, o, s=1):
    return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class PlateOCR(nn.Module):
    """(N,3,64,128) in 0..1 -> logits (N, slots, classes). About 2M parameters, ~45M MACs."""

    def __init__(self, widths=WIDTHS, slots=MAX_SLOTS, ncls=NCLS, dropout=0.3):
        super().__init__()
        c = widths
        self.slots, self.ncls = slots, ncls
        self.features = nn.Sequential(
            *cbr(3, c[0], 2), *cbr(c[0], c[1]), nn.MaxPool2d(2),                   # 32x64 -> 16x32
            *cbr(c[1], c[2]), *cbr(c[2], c[3]), nn.MaxPool2d(2),                   # 8x16
            *cbr(c[3], c[4]), *cbr(c[4], c[5]), nn.MaxPool2d(2),                   # 4x8
            *cbr(c[5], c[6]))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c[6] * (IMG_H // 16) * (IMG_W // 16), slots * ncls)

    def forward(self, x):
        f = self.features(x).flatten(1)
        return self.head(self.drop(f)).view(-1, self.slots, self.ncls)


class PlateOCRCTC(nn.Module):
    """Same backbone up to the 8x16 level, then a CTC head: (N,3,64,128) -> logits (N, 32, classes).

    Each of the 16 feature columns (height folded into channels) gives two CTC steps
    (left and right half), so plates of up to 10 characters with repeats fit; the
    blank is the last class.
    """

    def __init__(self, widths=WIDTHS, ncls=NCLS, hidden=256, dropout=0.2, context="conv"):
        super().__init__()
        c = widths
        self.ncls = ncls
        self.features = nn.Sequential(
            *cbr(3, c[0], 2), *cbr(c[0], c[1]), nn.MaxPool2d(2),
            *cbr(c[1], c[2]), *cbr(c[2], c[3]), nn.MaxPool2d(2),
            *cbr(c[3], c[4]), *cbr(c[4], c[5]))                                   # 128 x 8 x 16
        self.proj = nn.Linear(c[5] * (IMG_H // 8), hidden)
        # context across columns: a 3-wide conv, or a bidirectional GRU that sees the whole
        # line (helps count runs of one character, e.g. "0000", and ignore edge clutter)
        if context == "gru":
            self.rnn = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        else:
            self.ctx = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 2 * ncls)

    def forward(self, x):
        f = self.features(x)                                   # N, C, H, W (H, W fixed by the input size)
        f = f.permute(0, 3, 1, 2).flatten(2)                   # N, W, C*H
        f = F.relu(self.proj(f))
        if hasattr(self, "rnn"):
            f = self.rnn(f)[0] + f
        else:
            f = F.relu(self.ctx(f.transpose(1, 2))).transpose(1, 2) + f
        return self.out(self.drop(f)).reshape(f.shape[0], -1, self.ncls)  # 2 steps per column


def _through(name: str, passthrough: dict[str, str]) -> str:
    """The tensor behind a chain of activation Quantize/DequantizeLinear nodes."""
    while name in passthrough:
        name = passthrough[name]
    return name


def load_onnx_weights(model: PlateOCRCTC, path: str) -> int:
    """Load an exported plate_ocr.onnx (GRU context; float, or int8 QDQ dequantized) into ``model``.

    Returns the number of tensors set. BNs become identities holding the folded biases
    (``onnx_weights``); the caller keeps them in eval mode. ONNX orders the GRU gates z, r, h;
    PyTorch r, z, n.
    """
    g, init = initializers(path)
    passthrough = {n.output[0]: n.input[0] for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                   and n.input[0] not in init}
    if not hasattr(model, "rnn"):
        raise ValueError(f"{path}: only a GRU-context CTC plate_ocr.onnx can be loaded")
    n_conv = load_folded_convs(g, init, model.features, path)
    with torch.no_grad():
        mats = [n for n in g.node if n.op_type == "MatMul"]
        adds = {_through(i, passthrough): n for n in g.node if n.op_type == "Add" for i in n.input}
        for node, lin in zip(mats, (model.proj, model.out), strict=True):
            lin.weight.copy_(init[node.input[1]].T)
            lin.bias.copy_(init[next(i for i in adds[node.output[0]].input if i in init)])
        gru = next(n for n in g.node if n.op_type == "GRU")
        W, R, B = (init[i] for i in gru.input[1:4])
        H = R.shape[-1]

        def rzn(t):  # z, r, h -> r, z, n along the first axis
            return torch.cat([t[H:2 * H], t[:H], t[2 * H:3 * H]])

        for d, suffix in ((0, ""), (1, "_reverse")):
            getattr(model.rnn, "weight_ih_l0" + suffix).copy_(rzn(W[d]))
            getattr(model.rnn, "weight_hh_l0" + suffix).copy_(rzn(R[d]))
            getattr(model.rnn, "bias_ih_l0" + suffix).copy_(rzn(B[d, :3 * H]))
            getattr(model.rnn, "bias_hh_l0" + suffix).copy_(rzn(B[d, 3 * H:]))
    return n_conv + 4 + 8


def make_model(head: str, context: str = "conv") -> nn.Module:
    return PlateOCRCTC(context=context) if head == "ctc" else PlateOCR()


class Ema:
    """Exponential moving average of the weights (BN statistics included)."""

    def __init__(self, model, decay):
        import copy

        self.module = copy.deepcopy(model).eval()
        self.decay, self.n = decay, 0
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update_parameters(self, model):
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.lerp_(src[k].detach(), 1 - d)
            else:
                v.copy_(src[k])


def warm_cosine(frac: float, warm: float) -> float:
    """Learning-rate factor at ``frac`` of the run: linear warm-up, then cosine down to 2%."""
    if frac < warm:
        return frac / warm
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def ctc_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CTC loss for slot-encoded labels (pads after the text); empty labels allowed."""
    logp = logits.float().log_softmax(-1).transpose(0, 1)       # T, N, C
    lengths = (y != PAD_IDX).sum(1)
    targets = y[y != PAD_IDX]
    t = torch.full((y.shape[0],), logp.shape[0], dtype=torch.long, device=y.device)
    return F.ctc_loss(logp, targets, t, lengths, blank=PAD_IDX, reduction="mean", zero_infinity=True)


def optimise(model, ema, opt, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimiser step on the batch loss (CTC, or cross-entropy per slot), then the EMA; returns the loss."""
    if isinstance(model, PlateOCRCTC):
        loss = ctc_loss(logits, y)
    else:
        loss = F.cross_entropy(logits.float().reshape(-1, NCLS), y.reshape(-1), label_smoothing=0.05)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    ema.update_parameters(model)
    return loss


def train_head_on_cache(model, ema, opt, loader, us_val, device, deadline, args):
    """Frozen backbone: features of ``args.cache`` samples once, then head-only epochs until the deadline."""
    model.eval()
    feats, labels, n = [], [], 0
    t0 = time.time()
    with torch.no_grad():
        for xb, yb in loader:
            x = xb.to(device).permute(0, 3, 1, 2).float().div_(255)
            feats.append(model.features(x).half())
            labels.append(yb.to(device))
            n += len(yb)
            if n >= args.cache or time.time() > deadline - 60:
                break
    feats, labels = torch.cat(feats), torch.cat(labels)
    log(f"cached features of {len(feats)} samples {tuple(feats.shape[1:])} in {time.time() - t0:.0f}s")
    del loader
    head = [m for name, m in model.named_children() if name != "features"]
    step, seen, history, epoch, lr = 0, 0, [], 0, 0.0
    start = time.time()
    span = max(1.0, deadline - start)
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    while time.time() < deadline:
        perm = torch.randperm(len(feats), generator=g)
        for m in head:
            m.train()
        tot, cnt = 0.0, 0
        for i in range(0, len(perm) - args.batch + 1, args.batch):
            if time.time() >= deadline:
                break
            frac = (time.time() - start) / span
            lr = args.lr * warm_cosine(frac, 0.03)
            for grp in opt.param_groups:
                grp["lr"] = lr * grp["lr_mult"]
            idx = perm[i:i + args.batch]
            f = feats[idx].float()
            f = F.dropout2d(f, 0.1, training=True)
            loss = optimise(model, ema, opt, head_forward(model, f), labels[idx])
            step += 1
            seen += len(idx)
            tot, cnt = tot + float(loss), cnt + 1
        epoch += 1
        val = score(predict(ema.module, [c for _, c, _ in us_val], device), [t for *_, t in us_val])
        history.append({"t": round(time.time() - T0, 1), "step": step, "loss": tot / max(1, cnt), **val})
        log(f"epoch {epoch} step {step} lr {lr:.2e} loss {tot / max(1, cnt):.4f} "
            f"val(EMA) exact {val['exact']:.3f} 1-edit {val['within1']:.3f}")
    return step, seen, history


def head_forward(model, f):
    """The part of ``model.forward`` after ``model.features``."""
    if isinstance(model, PlateOCRCTC):
        f = f.permute(0, 3, 1, 2).flatten(2)
        f = F.relu(model.proj(f))
        f = F.relu(model.ctx(f.transpose(1, 2))).transpose(1, 2) + f
        return model.out(model.drop(f)).reshape(f.shape[0], -1, model.ncls)
    return model.head(model.drop(f.flatten(1))).view(-1, model.slots, model.ncls)


def gpu_jitter(x: torch.Tensor) -> torch.Tensor:
    """Cheap extra augmentation for a re-used batch: small affine + brightness/contrast."""
    n = x.shape[0]
    dev = x.device
    ang = (torch.rand(n, device=dev) - 0.5) * 0.1
    sc = 0.92 + torch.rand(n, device=dev) * 0.16
    sx = sc * (0.95 + torch.rand(n, device=dev) * 0.1)
    tx, ty = (torch.rand(2, n, device=dev) - 0.5) * 0.12
    theta = torch.stack([torch.stack([sx * torch.cos(ang), -sc * torch.sin(ang) * 0.5, tx], 1),
                         torch.stack([sx * torch.sin(ang) * 2, sc * torch.cos(ang), ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    c = (0.7 + torch.rand(n, 1, 1, 1, device=dev) * 0.6)
    b = (torch.rand(n, 1, 1, 1, device=dev) - 0.5) * 0.3
    return ((x - 0.5) * c + 0.5 + b).clamp_(0, 1)


class WithSoftmax(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return torch.softmax(self.m(x), dim=-1)


# ---------------------------------------------------------------- eval

def score(preds: list[str], truths: list[str]) -> dict:
    n = max(1, len(truths))
    ed = [edit_distance(p, t) for p, t in zip(preds, truths, strict=True)]
    return {"n": len(truths), "exact": sum(e == 0 for e in ed) / n, "within1": sum(e <= 1 for e in ed) / n}


@torch.no_grad()
def predict(model, crops, device, wide_aspect: float = 0.0) -> list[str]:
    """Greedy readings of ``crops``, each at its input width (``alprd.vision.ocr.input_width``)."""
    model.eval()
    out = [""] * len(crops)
    widths = [input_width(c.shape, wide_aspect) if isinstance(model, PlateOCRCTC) else IMG_W for c in crops]
    for width in set(widths):
        idx = [i for i, w in enumerate(widths) if w == width]
        for k in range(0, len(idx), 256):
            part = idx[k:k + 256]
            x = np.stack([resize_crop(crops[i], IMG_H, width) for i in part])
            xt = torch.from_numpy(x).to(device).permute(0, 3, 1, 2).float().div_(255)
            probs = torch.softmax(model(xt).float(), -1).cpu().numpy()
            dec = decode_ctc(probs, ALPHABET) if isinstance(model, PlateOCRCTC) else decode_slots(probs, ALPHABET, PAD)
            for i, (t, _, _) in zip(part, dec, strict=True):
                out[i] = t
    return out


# ---------------------------------------------------------------- export
def export_onnx(model, path: Path, meta: dict) -> None:
    import onnx

    wrapped = WithSoftmax(model).eval().cpu()
    head = "ctc" if isinstance(model, PlateOCRCTC) else "slots"  # a CTC model reads any width
    x = torch.zeros(1, 3, IMG_H, IMG_W)
    kw = {"input_names": ["image"], "output_names": ["probs"], "opset_version": 17,
          "dynamic_axes": {"image": {0: "batch", 3: "width"}, "probs": {0: "batch", 1: "steps"}}
          if head == "ctc" else {"image": {0: "batch"}, "probs": {0: "batch"}}}
    try:
        torch.onnx.export(wrapped, (x,), str(path), dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(wrapped, (x,), str(path), **kw)
    m = onnx.load(str(path))
    m.graph.output[0].type.tensor_type.shape.dim[2].dim_value = NCLS  # the exporter leaves it symbolic
    meta = {"alphabet": ALPHABET, "pad": PAD, "head": head, "input": f"3x{IMG_H}xW BGR 0..1" if head == "ctc"
            else f"3x{IMG_H}x{IMG_W} BGR 0..1",
            **{k: str(v) for k, v in meta.items()}}
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


# ---------------------------------------------------------------- main
def main() -> int:
    global _LOG
    cv2.setNumThreads(1)  # OpenCV's thread pool does not survive the fork of a DataLoader worker
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--fonts", default=str(ROOT / ".data" / "fonts"), help="folder of .ttf fonts")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--time-budget", type=float, default=380, help="seconds for the whole run")
    ap.add_argument("--out", default=str(ROOT / "runs" / "ocr"))
    ap.add_argument("--workers", type=int, default=7)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reserve", type=float, default=20, help="seconds kept for eval+export")
    ap.add_argument("--reuse", type=int, default=1,
                    help="optimizer steps per generated batch (>1 when the GPU outruns the workers; "
                         "re-used copies get a small GPU-side jitter)")
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--report-every", type=float, default=15, help="seconds between validations on CPU")
    ap.add_argument("--head", default="slots", choices=["slots", "ctc"],
                    help="fixed slots (reads two-line plates) or CTC over 32 steps (one line)")
    ap.add_argument("--context", default="conv", choices=["conv", "gru"],
                    help="CTC head's context over the columns: a 3-wide conv or a bidirectional GRU")
    ap.add_argument("--freeze", type=int, default=0,
                    help="keep the first N backbone modules fixed (BN too); with --init, to fine-tune fast on CPU")
    ap.add_argument("--cache", type=int, default=0,
                    help="CPU shortcut: with the whole backbone frozen (--freeze 99, --init), compute the "
                         "features of this many generated samples once, then train the head on them for "
                         "epochs until the time budget")
    ap.add_argument("--backbone-lr", type=float, default=1.0, help="lr multiplier of the backbone")
    ap.add_argument("--init", default="", help="optional .pt state dict to start from")
    ap.add_argument("--init-onnx", default="", help="start from an exported float plate_ocr.onnx (GRU context)")
    ap.add_argument("--pseudo", default=str(ROOT / ".data" / "pseudo" / "groundtruth.csv"),
                    help="teacher-read real crops (scripts/pseudo_label_crops.py), mix key 'pseudo'")
    ap.add_argument("--wide-aspect", type=float, default=0.0,
                    help="crops at least this many times as wide as high train (and validate) at the wide input "
                         "width (alprd.vision.ocr.input_width; the daemon's vision.ocr_wide_aspect); 0: all at 128")
    ap.add_argument("--context-p", type=float, default=0.0,
                    help="share of real and rendered one-line plates pasted into real surrounds and cut "
                         "like a detector box (scripts/plate_context.py)")
    ap.add_argument("--side-p", type=float, default=0.0,
                    help="share of the plates in context (--context-p) seen from the side, then levelled")
    ap.add_argument("--mix", default="us=0.36,br=0.08,font=0.33,hershey=0.17,neg=0.06")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _LOG = open(out / "train.log", "a")  # noqa: SIM115 - open for the whole run
    log("args", vars(args))
    torch.manual_seed(args.seed)
    device = torch.device(args.device if (args.device == "cpu" or torch.cuda.is_available()) else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(2)
    deadline = T0 + args.time_budget - args.reserve

    data = Path(args.data)
    us_train, us_val = load_us(data)
    br_train, br_val = load_br(data)
    log(f"US crops train {len(us_train)} val {len(us_val)}; BR train {len(br_train)} val {len(br_val)}")
    mix = {k: float(v) for k, v in (kv.split("=") for kv in args.mix.split(","))}
    FontPlateRenderer(args.fonts)  # fail now, not in a worker, if the fonts are missing

    model = make_model(args.head, args.context).to(device)
    if args.init:
        state = torch.load(args.init, map_location=device)
        own = model.state_dict()
        same = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(same, strict=False)
        log(f"init from {args.init}: {len(same)}/{len(own)} tensors")
    if args.init_onnx:
        log(f"init from {args.init_onnx}: {load_onnx_weights(model, args.init_onnx)} tensors (BN folded, kept in eval)")
    frozen = list(model.features[:args.freeze].parameters())
    for p in frozen:
        p.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last)
    ema = Ema(model, args.ema)
    log(f"model params {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M on {device}")
    backbone = [p for p in model.features.parameters() if p.requires_grad]
    head_params = [p for n, p in model.named_parameters() if not n.startswith("features.")]
    opt = torch.optim.AdamW([{"params": backbone, "lr_mult": args.backbone_lr},
                             {"params": head_params, "lr_mult": 1.0}], lr=args.lr, weight_decay=0.02)
    pseudo_train, pseudo_val = load_pseudo(data, Path(args.pseudo))
    log(f"teacher-read crops train {len(pseudo_train)} val {len(pseudo_val)}")
    ds = PlateStream(us_train, br_train, args.fonts, args.batch, args.seed, mix,
                     pseudo=pseudo_train, data=data, context_p=args.context_p, wide_aspect=args.wide_aspect,
                     side_p=args.side_p)
    # held-out US crops as the daemon cuts them from a scene: fixed, generated once
    ctx_val, eu_val = [], []
    if args.context_p > 0:
        bank, vrng = ContextBank(data, seed=99), np.random.default_rng(99)
        fonts_v = FontPlateRenderer(args.fonts).text_fonts
        ctx_val = [(n, in_context(c, vrng, bank, fonts_v), t) for n, c, t in us_val]
        if mix.get("eu", 0) > 0:  # rendered European plates in context, band and all: fixed, never trained on
            eu = EuPlateRenderer(FontPlateRenderer(args.fonts))
            eu_val = [(f"eu{i}", in_context(p, vrng, bank, fonts_v), t[0])
                      for i, (p, t) in enumerate(eu.render(vrng) for _ in range(300))]
        del bank
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=args.workers, pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init, persistent_workers=False,
        prefetch_factor=6 if args.workers > 0 else None)
    use_amp = device.type == "cuda"
    if args.cache > 0:
        step, seen, history = train_head_on_cache(model, ema, opt, loader, us_val, device, deadline, args)
        loader = []  # the training loop below then does nothing
    train_start = time.time()
    span = max(1.0, deadline - train_start)
    if args.cache <= 0:
        step, seen, history = 0, 0, []
    last_report, loss_avg = time.time(), None
    try:
        for xb, yb in loader:
            now = time.time()
            if now >= deadline:
                break
            model.train()
            model.features[:args.freeze].eval()  # frozen part: BN statistics fixed too
            if args.init_onnx:  # folded BNs hold the exported function: no batch statistics
                freeze_batchnorm(model)
            x0 = xb.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
            y = yb.to(device, non_blocking=True)
            for r in range(max(1, args.reuse)):
                frac = (time.time() - train_start) / span
                lr = args.lr * warm_cosine(frac, 0.04)
                for g in opt.param_groups:
                    g["lr"] = lr * g["lr_mult"]
                x = x0 if r == 0 else gpu_jitter(x0)
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = model(x)
                loss = optimise(model, ema, opt, logits, y)
                step += 1
            seen += len(yb)
            lv = float(loss.detach()) if step % 10 == 0 or device.type == "cpu" else None
            if lv is not None:
                loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
            if time.time() - last_report > (30 if device.type == "cuda" else args.report_every):
                last_report = time.time()
                val = score(predict(ema.module, [c for _, c, _ in us_val], device, args.wide_aspect),
                            [t for *_, t in us_val])
                extra = {name: score(predict(ema.module, [c for _, c, _ in vs], device, args.wide_aspect),
                                     [t for *_, t in vs])
                         for name, vs in (("ctx", ctx_val), ("eu", eu_val), ("pseudo", pseudo_val)) if vs}
                rate = seen / (time.time() - train_start)
                history.append({"t": round(time.time() - T0, 1), "step": step, "loss": loss_avg, **val,
                                **{f"{k}_exact": v["exact"] for k, v in extra.items()}})
                log(f"step {step} seen {seen} ({rate:.0f}/s) lr {lr:.2e} loss {loss_avg:.4f} "
                    f"val(EMA) exact {val['exact']:.3f} 1-edit {val['within1']:.3f} "
                    + " ".join(f"{k} {v['exact']:.3f}" for k, v in extra.items()))
                torch.save(ema.module.state_dict(), out / "plate_ocr.pt")
    except Exception:  # noqa: BLE001 - keep what was learnt, still export
        log("training stopped by an error:\n" + traceback.format_exc())
    log(f"training done: {step} steps, {seen} samples, {time.time() - train_start:.0f}s")

    # ----- pick raw or EMA weights on the validation split, export, verify
    # (in-context US crops count too when they exist: the daemon's crops look like them)
    truths = [t for *_, t in us_val + ctx_val + eu_val]
    crops = [c for _, c, _ in us_val + ctx_val + eu_val]
    candidates = {}
    for name, m in (("ema", ema.module), ("raw", model)):
        try:
            candidates[name] = (score(predict(m, crops, device, args.wide_aspect), truths), m)
        except Exception:  # noqa: BLE001
            log(f"eval of {name} failed:\n" + traceback.format_exc())
    best = max(candidates, key=lambda k: (candidates[k][0]["exact"], candidates[k][0]["within1"]))
    val_us, best_model = candidates[best]
    val_br = score(predict(best_model, [c for _, c, _ in br_val], device, args.wide_aspect),
                   [t for *_, t in br_val]) if br_val else {}
    log(f"chosen {best}: US val {val_us}; BR val {val_br}; other: "
        f"{ {k: v[0] for k, v in candidates.items() if k != best} }")
    final = make_model(args.head, args.context)
    final.load_state_dict({k: v.float().cpu() for k, v in best_model.state_dict().items()})
    final.eval()
    torch.save(final.state_dict(), out / "plate_ocr.pt")
    metrics = {"steps": step, "samples_seen": seen, "train_seconds": round(time.time() - train_start, 1),
               "device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
               "weights": best, "val_us": val_us, "val_br": val_br, "history": history,
               "split": "US: sha1(file) % 5 == 0; BR: sha1(plate) % 5 == 0", "args": vars(args),
               "torch": torch.__version__}
    onnx_path = out / "plate_ocr.onnx"
    try:
        export_onnx(final, onnx_path, {"val_us_exact": f"{val_us['exact']:.4f}", "steps": step,
                                       "trained_by": "scripts/train_ocr.py"})
        from alprd.vision.ocr import OnnxRecognizer

        rec = OnnxRecognizer(onnx_path, threads=2, min_confidence=0.0, wide_aspect=args.wide_aspect)
        onnx_preds = [r.text for r in rec.read(crops)]
        metrics["val_us_onnx"] = score(onnx_preds, truths)
        log(f"ONNX written and checked with onnxruntime: US val {metrics['val_us_onnx']}")
    except Exception:  # noqa: BLE001 - the .pt is saved; report and go on
        log("ONNX export/check failed (plate_ocr.pt is saved; export it elsewhere):\n" + traceback.format_exc())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    log(f"wrote {out}/metrics.json; total {time.time() - T0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
