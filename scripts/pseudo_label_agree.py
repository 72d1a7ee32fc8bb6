#!/usr/bin/env python3
"""More real European plate labels by student-teacher agreement (issue 19).

`scripts/pseudo_label_crops.py` keeps a European crop of plate-crops-detect only when the
PP-OCRv4 teacher reads it the same twice (band cut off; band and seals painted white).
That rule is strict: it keeps 882 of 1,696 EU crops, and the rest, where the teacher's
two readings differ (often one reading has a seal or band read as a character), are lost.
A second, independent reader breaks the tie: our shipped recogniser (the student). For
each EU crop (`eu/`, `eu2/`) not already in the old table, the student reads the whole
crop (band and seals kept, as the daemon sees it) and the teacher reads it twice exactly as
pseudo_label_crops.py does (its functions, imported). A crop is kept when

* the student's text equals one of the teacher's two readings,
* that text fits the EU syntax of pseudo_label_crops.py (EU_SYNTAX), and
* the student's confidence is >= --min-conf (0.9).

Validation stays unseen: training splits the teacher-read table by sha1(file) % 5 == 0
(plate_crops.load_pseudo, the same split eval_ocr's `eu` set uses), so a new crop whose
file falls in that split is left out (it would only change the val set, with labels that
agree with the student by construction); and a new crop whose text equals the text of an
EU validation crop of the old table is left out too, so that the same plate seen in another
file cannot leak the eu_teacher validation into training.

``--rule views`` asks the student alone, five times: the crop and its four other cuts
(``alprd.vision.ocr.second_views``) must all read the same text, which must
fit EU_SYNTAX with confidence >= --min-conf; no teacher (self-training on the crops where the
teacher and the student disagreed).

Writes OUT/groundtruth.csv: the old rows unchanged, then the new ones (`file,PLATE,eu,conf`,
conf being the student's confidence), and prints how many EU crops were added.

    .venv/bin/python scripts/pseudo_label_agree.py --old .data/pseudo/groundtruth.csv --out .data/pseudo2
    .venv/bin/python scripts/pseudo_label_agree.py --rule views --old .data/pseudo4/groundtruth.csv --out .data/pseudo5
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from eval_ocr import ppocr_reader
from plate_crops import is_val, write_labels
from pseudo_label_crops import EU_SYNTAX, clean_eu, eu_band_width

from alprd.vision.ocr import OnnxRecognizer, second_views


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--old", default=str(ROOT / ".data" / "pseudo" / "groundtruth.csv"))
    ap.add_argument("--out", default=str(ROOT / ".data" / "pseudo2"))
    ap.add_argument("--model", default=str(ROOT / "models" / "plate_ocr.onnx"))
    ap.add_argument("--min-conf", type=float, default=0.9, help="least student confidence")
    ap.add_argument("--rule", choices=("teacher", "views"), default="teacher",
                    help="keep a crop when the student agrees with the teacher, or with its own other cuts")
    args = ap.parse_args()

    with open(args.old, newline="") as fh:
        old = [row for row in csv.reader(fh) if len(row) >= 2]
    have = {row[0] for row in old}
    val_texts = {row[1] for row in old if len(row) >= 3 and row[2] == "eu" and is_val(row[0])}
    teacher = ppocr_reader() if args.rule == "teacher" else None
    if teacher is None and args.rule == "teacher":
        sys.exit("rapidocr_onnxruntime is missing (pip install rapidocr-onnxruntime)")
    student = OnnxRecognizer(args.model, threads=1, min_confidence=0.0, regions=["eu"])

    root = Path(args.data) / "plate-crops-detect"
    new, why = [], Counter()
    for folder in ("eu", "eu2"):
        added = 0
        for f in sorted((root / folder).glob("*.jpg")):
            key = f"plate-crops-detect/{folder}/{f.name}"
            if key in have:
                why["already labelled"] += 1
                continue
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                continue
            why["candidates"] += 1
            if is_val(key):  # would fall in the teacher-read val split: keep that split as it was
                why["val split (file)"] += 1
                continue
            ours = student.read([img])[0]
            if teacher is not None:
                band = eu_band_width(img)
                readings = {teacher[0](img[:, band:]), teacher[0](clean_eu(img))}
            else:
                readings = {r.text for r in student.read(second_views(img))} | {ours.text}
                readings = readings if len(readings) == 1 else set()
            if ours.text not in readings:
                why["no agreement"] += 1
                continue
            if not EU_SYNTAX.match(ours.text):
                why["not EU syntax"] += 1
                continue
            if ours.confidence < args.min_conf:
                why[f"agree, conf < {args.min_conf}"] += 1
                continue
            if ours.text in val_texts:
                why["text of an EU val crop"] += 1
                continue
            new.append((key, ours.text, "eu", f"{ours.confidence:.3f}"))
            added += 1
        print(f"{folder}: {added} added", flush=True)
    path = write_labels(Path(args.out), old + new)
    print("why not kept / counts:", dict(why))
    print(f"EU added: {len(new)}; wrote {path}: {len(old)} old + {len(new)} new rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
