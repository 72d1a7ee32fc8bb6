#!/usr/bin/env python3
"""Accuracy of models/plate_ocr.onnx on the held-out real US crops, next to PP-OCRv4.

Held-out split (the one scripts/train_ocr.py never trains on): a crop of
DATA/us-plate-crops is validation when sha1(file name) % 5 == 0 (143 of 745).

Prints, for our model and for the pretrained PP-OCRv4 recogniser of the PyPI
package rapidocr-onnxruntime (output normalised to A-Z0-9), on the same crops:
exact-plate accuracy and within-1-edit accuracy. PP-OCRv4 runs in two modes:
``rec`` (recogniser alone on the whole crop) and ``det+rec`` (its text detector,
then the tallest text line, i.e. the registration number, left to right).
Also our model with two-line splitting off, to show it costs nothing on one-line plates.

``--set br`` scores the held-out Brazilian crops instead (split by plate text), ``--set eu`` the
held-out teacher-read European crops; ``--regions`` decodes with those plate syntaxes;
``--two-line N`` scores N rendered two-line plates (no real two-line crops exist in
the shared sets), where splitting is what makes them readable. ``--in-context`` pastes
each held-out crop into a real surround and cuts it as the daemon would (detector-like
box error and margin; one fixed draw, seed 99, as ``scripts/train_ocr.py`` draws its held-out US one).
``--second-read`` is the reader's ``vision.ocr_second_read`` (default: the config's), ``--level-degrees``
its ``vision.ocr_level_degrees``; ``--shear DEG`` first shears each crop as a plate seen from the side.

    python scripts/eval_ocr.py [--model models/plate_ocr.onnx] [--data ../shared/datasets]
                               [--set us|br|eu] [--split val|all] [--two-line N] [--in-context]
                               [--second-read X] [--level-degrees D] [--shear DEG]
                               [--no-ppocr] [--json out.json] [--errors]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from plate_crops import load_br, load_pseudo, load_us

from alprd.config import VisionConfig
from alprd.plates import edit_distance, normalize_plate
from alprd.synth import random_plate_text, render_plate, side_view
from alprd.vision.ocr import OnnxRecognizer

PSEUDO = ROOT / ".data" / "pseudo4" / "groundtruth.csv"


def score(preds: list[str], truths: list[str]) -> dict:
    n = max(1, len(truths))
    ed = [edit_distance(p, t) for p, t in zip(preds, truths, strict=True)]
    return {"n": len(truths), "exact": round(sum(e == 0 for e in ed) / n, 4),
            "within1": round(sum(e <= 1 for e in ed) / n, 4)}


def load_set(data: Path, which: str, split: str, pseudo: Path = PSEUDO) -> list[tuple[str, np.ndarray, str]]:
    """The validation (or all) crops of the US, Brazilian or teacher-read European set, as (file, image, text)."""
    if which == "eu":
        train, val = load_pseudo(data, pseudo)
        train, val = ([c for c in part if "/br/" not in c[0]] for part in (train, val))
    else:
        train, val = (load_us if which == "us" else load_br)(data)
    return val if split == "val" else train + val


def in_context_crops(data: Path, crops: list) -> list[tuple[str, np.ndarray, str]]:
    """The crops as the daemon cuts them from a scene: one fixed draw (seed 99) of surrounds and box errors."""
    from plate_context import ContextBank, in_context
    from synth_plates import FontPlateRenderer

    bank, rng = ContextBank(data, seed=99), np.random.default_rng(99)
    fonts = FontPlateRenderer(str(ROOT / ".data" / "fonts")).text_fonts
    return [(n, in_context(c, rng, bank, fonts), t) for n, c, t in crops]


def sheared(crops: list, degrees: float) -> list[tuple[str, np.ndarray, str]]:
    """The crops as seen from the side: rows sloping by ``degrees`` up or down (one fixed draw, seed 5),
    characters upright, the box a little looser and as much taller as the slope needs."""
    rng = np.random.default_rng(5)
    return [(name, side_view(crop, degrees * rng.choice([-1, 1])), text) for name, crop, text in crops]


def two_line_plates(n: int) -> list[tuple[str, np.ndarray, str]]:
    """``n`` rendered two-line (motorcycle-style) plates, mildly blurred and shrunk like a far crop."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        text = random_plate_text(rng)
        cut = int(rng.integers(len(text) // 2, (len(text) + 1) // 2 + 1))  # balanced lines, as on real plates
        plate = render_plate(text, rng, height=int(rng.integers(60, 120)), split=cut)
        out.append((f"two-line-{i}", cv2.GaussianBlur(plate, (3, 3), 0.8), text))
    return out


def ppocr_reader():
    """Return (rec_only, det_rec) functions over one BGR crop, or None if rapidocr is missing."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    engine = RapidOCR()

    def rec_only(img):
        res, _ = engine(img, use_det=False, use_cls=False, use_rec=True)
        return normalize_plate(res[0][0]) if res else ""

    def det_rec(img):
        res, _ = engine(img)
        if not res:
            return ""
        boxes = []
        for quad, text, _conf in res:
            q = np.asarray(quad, np.float32)
            t = normalize_plate(text)
            if t:
                boxes.append((q[:, 1].max() - q[:, 1].min(), q[:, 1].mean(), q[:, 0].min(), t))
        if not boxes:
            return ""
        h_max, y_c = max(boxes)[:2]
        line = [b for b in boxes if b[0] >= 0.6 * h_max and abs(b[1] - y_c) < 0.5 * h_max]
        return "".join(b[3] for b in sorted(line, key=lambda b: b[2]))

    return rec_only, det_rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "plate_ocr.onnx"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--split", default="val", choices=["val", "all"])
    ap.add_argument("--set", default="us", choices=["us", "br", "eu"],
                    help="US crops (the target), Brazilian ones, or the teacher-read European ones "
                         "(scripts/pseudo_label_crops.py; their text is PP-OCRv4's, not a person's)")
    ap.add_argument("--pseudo", default=str(PSEUDO),
                    help="labels of the European set (default: stage 10's, the band's letter dropped; "
                         "scripts/clean_band_labels.py)")
    ap.add_argument("--regions", default="", help="plate regions for the decoder, e.g. eu (default: none)")
    ap.add_argument("--two-line", type=int, default=0, metavar="N",
                    help="instead, read N rendered two-line plates, with and without line splitting")
    ap.add_argument("--in-context", action="store_true",
                    help="the crops pasted into real surrounds, cut like the daemon")
    ap.add_argument("--second-read", type=float, default=VisionConfig().ocr_second_read,
                    help="re-read from other cuts below this confidence (0 = never)")
    ap.add_argument("--wide-aspect", type=float, default=VisionConfig().ocr_wide_aspect,
                    help="read crops at least this many times as wide as high at the wide input (0 = never)")
    ap.add_argument("--level-degrees", type=float, default=VisionConfig().ocr_level_degrees,
                    help="level crops whose text slopes by at least this many degrees (0 = never)")
    ap.add_argument("--shear", type=float, default=0.0, metavar="DEG",
                    help="first shear each crop by DEG degrees up or down, as a plate seen from the side")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-ppocr", action="store_true", help="skip the PP-OCRv4 comparison")
    ap.add_argument("--errors", action="store_true", help="list our model's misreads")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args()

    if args.two_line:
        crops = two_line_plates(args.two_line)
        print(f"{len(crops)} rendered two-line plates (alprd.synth.render_plate(split=...))")
    else:
        crops = load_set(Path(args.data), args.set, args.split, Path(args.pseudo))
        print(f"{len(crops)} real {args.set.upper()} crops ({args.split} split of scripts/plate_crops.py)")
        if args.in_context:
            crops = in_context_crops(Path(args.data), crops)
            print("  each pasted into a real surround and cut like a detector box (scripts/plate_context.py)")
        if args.shear:
            crops = sheared(crops, args.shear)
            print(f"  each sheared by {args.shear:g} degrees up or down, its box grown to hold it")
    truths = [t for *_, t in crops]
    imgs = [c for _, c, _ in crops]
    regions = [r for r in args.regions.split(",") if r]
    rec = OnnxRecognizer(args.model, threads=args.threads, min_confidence=0.0, regions=regions,
                         second_read=args.second_read, wide_aspect=args.wide_aspect, level_degrees=args.level_degrees)
    t = time.perf_counter()
    reads = rec.read(imgs)
    ours_s = time.perf_counter() - t
    preds = [r.text for r in reads]
    figures = {"ours": score(preds, truths)}
    whole = OnnxRecognizer(args.model, threads=args.threads, min_confidence=0.0, split_two_line=False).read(imgs)
    figures["ours_no_line_split"] = score([r.text for r in whole], truths)
    gated = OnnxRecognizer(args.model, threads=args.threads).read(imgs)  # default min_confidence 0.5
    kept = [(g.text, tr) for g, tr in zip(gated, truths, strict=True) if g.text]
    figures["ours_min_conf_0.5"] = {"kept": len(kept), "exact_of_kept": round(
        sum(p == tr for p, tr in kept) / max(1, len(kept)), 4)}
    figures["ours_O_as_0"] = score([p.replace("O", "0") for p in preds], [tr.replace("O", "0") for tr in truths])
    print(f"ours      exact {figures['ours']['exact']:.2%}  within-1-edit {figures['ours']['within1']:.2%}  "
          f"({ours_s * 1000 / max(1, len(imgs)):.2f} ms/crop batched, {args.threads} thread)")
    print(f"          with min_confidence 0.5: {len(kept)} read, {figures['ours_min_conf_0.5']['exact_of_kept']:.2%} "
          f"of those exact; O read as 0: exact {figures['ours_O_as_0']['exact']:.2%}")
    print(f"          without two-line splitting: exact {figures['ours_no_line_split']['exact']:.2%}  "
          f"within-1-edit {figures['ours_no_line_split']['within1']:.2%}")
    if args.errors:
        for (name, _, tr), r in zip(crops, reads, strict=True):
            if r.text != tr:
                print(f"   {name:14s} truth {tr:11s} read {r.text:11s} conf {r.confidence:.2f}")

    if not args.no_ppocr:
        pp = ppocr_reader()
        if pp is None:
            print("PP-OCRv4: rapidocr-onnxruntime is not installed (pip install -e '.[train]')")
        else:
            for name, fn in zip(("rec", "det+rec"), pp, strict=True):
                t = time.perf_counter()
                p = [fn(i) for i in imgs]
                ms = (time.perf_counter() - t) * 1000 / max(1, len(imgs))
                figures[f"ppocrv4_{name}"] = {**score(p, truths), "ms_per_crop": round(ms, 1)}
                print(f"PP-OCRv4 {name:8s} exact {figures[f'ppocrv4_{name}']['exact']:.2%}  within-1-edit "
                      f"{figures[f'ppocrv4_{name}']['within1']:.2%}  ({ms:.0f} ms/crop)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
