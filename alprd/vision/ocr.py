"""Plate OCR with our own ONNX recogniser (``models/plate_ocr.onnx``).

The crop is resized to 64x128 (BGR, 0..1) and a small CNN gives, per position,
probabilities over the alphabet A-Z0-9 plus one extra class (the last). Two heads
exist, named in the model's ``head`` metadata:

* ``ctc`` (the shipped model): 32 steps left to right, the extra class is the CTC
  blank; greedy decoding collapses repeats and drops blanks. It reads one line, so
  two-line plates are split into their lines first (:mod:`alprd.vision.lines`).
* ``slots`` (fast-plate-ocr style): 10 fixed character slots, the extra class is
  the pad ``_``; text is the non-pad slots in order, so a two-line plate comes out
  top line first. ``scripts/train_ocr.py --head slots`` trains it.

Only numpy, OpenCV and onnxruntime are needed at run time; ``scripts/train_ocr.py``
imports :func:`resize_crop` from here so that training and inference see the same
pixels. Model card: ``models/plate_ocr.md``.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from alprd.vision.base import ModelError, PlateText, open_session
from alprd.vision.ctc import align, beam_search
from alprd.vision.formats import Syntaxes
from alprd.vision.lines import split_for_reader
from alprd.vision.skew import level

ALPHABET = string.ascii_uppercase + string.digits
PAD = "_"
IMG_H, IMG_W = 64, 128
WIDE_W = 160  # the input width of wide crops (input_width), for a model whose width is dynamic
MAX_SLOTS = 10
_TWO_LINE_MIN = 0.5  # both lines of a two-line plate must be read at least this confidently
# a plate syntax's best text is taken when it is at least this likely relative to the
# unconstrained best (chosen on held-out Brazilian and teacher-read crops, models/plate_ocr.md)
SYNTAX_MIN_RATIO = 1e-3

_FIX = ("restore it with `git checkout -- models/plate_ocr.onnx`, or retrain it with "
        "`python scripts/train_ocr.py` (see models/plate_ocr.md), or point vision.ocr_model "
        "in the config at a valid file")


def input_width(shape: tuple[int, ...], wide_aspect: float, width: int = IMG_W, wide: int = WIDE_W) -> int:
    """The recogniser's input width for a crop of ``shape``: ``wide`` when the crop is at least
    ``wide_aspect`` times as wide as high (0: never), else ``width``.

    Squeezing a long European plate (4-5:1) into the 2:1 input halves its characters' width;
    at 160 they keep more of their shape. A 2:1 US or Brazilian plate stays at 128, where
    stretching would distort it (models/plate_ocr.md, stage 16).
    """
    return wide if wide_aspect > 0 and shape[1] >= wide_aspect * shape[0] else width


def preprocess(crop: np.ndarray, height: int = IMG_H, width: int = IMG_W) -> np.ndarray:
    """One BGR (or gray) uint8 crop -> float32 array (3, height, width) in 0..1.

    The crop is stretched to the model's size (plates and the crops our detector
    gives are roughly 2:1, like the input). Raises ValueError for what is not an image.
    """
    return _to_input(resize_crop(crop, height, width))


def _to_input(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) * np.float32(1 / 255)


def resize_crop(crop: np.ndarray, height: int = IMG_H, width: int = IMG_W) -> np.ndarray:
    """The uint8 half of :func:`preprocess`: any BGR/gray/BGRA uint8 crop -> (height, width, 3) BGR."""
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.size == 0:
        raise ValueError("not a uint8 image")
    if crop.ndim == 3 and crop.shape[2] == 1:
        crop = crop[:, :, 0]
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    elif crop.ndim == 3 and crop.shape[2] == 4:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGRA2BGR)
    elif crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"unexpected image shape {crop.shape}")
    h, w = crop.shape[:2]
    if h < 4 or w < 4:
        raise ValueError(f"image too small ({w}x{h})")
    interp = cv2.INTER_AREA if (h > height and w > width) else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, height), interpolation=interp)


def decode_slots(probs: np.ndarray, alphabet: str = ALPHABET, pad: str = PAD,
                 ) -> list[tuple[str, float, tuple[float, ...]]]:
    """Decode slot probabilities (batch, slots, len(alphabet)+1) -> (text, confidence, per-char).

    The last class is the pad symbol. Pads are dropped wherever they are; the plate's
    confidence is the lowest winning probability over *all* slots (pads included, since
    they decide the length); per-char confidences are those of the kept slots.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[2] != len(alphabet) + 1:
        raise ValueError(f"expected (batch, slots, {len(alphabet) + 1}) probabilities, got {probs.shape}")
    idx = probs.argmax(axis=2)
    best = np.take_along_axis(probs, idx[..., None], axis=2)[..., 0]
    conf = best.min(axis=1) if probs.shape[1] else np.zeros(len(probs), np.float32)
    symbols = np.array(list(alphabet + pad))
    chars = symbols[idx]
    keep = idx != len(alphabet)
    out = []
    for i in range(len(probs)):
        k = keep[i]
        out.append(("".join(chars[i][k]), float(conf[i]), tuple(float(c) for c in best[i][k])))
    return out


def decode_ctc(probs: np.ndarray, alphabet: str = ALPHABET,
               ) -> list[tuple[str, float, tuple[float, ...]]]:
    """Greedy CTC decoding of (batch, steps, len(alphabet)+1) probabilities; blank is the last class.

    Repeats are collapsed, then blanks dropped ("AA-A" -> "AA"). The plate's confidence is
    the lowest winning probability over all steps (blank steps decide where characters
    split); a character's confidence is the best probability over the steps that emitted it.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[2] != len(alphabet) + 1:
        raise ValueError(f"expected (batch, steps, {len(alphabet) + 1}) probabilities, got {probs.shape}")
    blank = len(alphabet)
    idx = probs.argmax(axis=2)
    best = np.take_along_axis(probs, idx[..., None], axis=2)[..., 0]
    conf = best.min(axis=1) if probs.shape[1] else np.zeros(len(probs), np.float32)
    prev = np.concatenate([np.full((len(idx), 1), -1), idx[:, :-1]], axis=1)
    starts = (idx != blank) & (idx != prev)          # first step of each emitted character
    run_id = np.cumsum(idx != prev, axis=1)          # steps of one run share an id
    symbols = np.array(list(alphabet + "_"))
    out = []
    for i in range(len(probs)):
        pos = np.flatnonzero(starts[i])
        if len(pos) == 0:
            out.append(("", float(conf[i]), ()))
            continue
        ids = run_id[i]
        run_best = np.zeros(ids[-1] + 1, np.float32)
        np.maximum.at(run_best, ids, best[i])
        chars = tuple(float(c) for c in run_best[ids[pos]])
        out.append(("".join(symbols[idx[i, pos]]), float(conf[i]), chars))
    return out


def second_views(crop: np.ndarray) -> list[np.ndarray]:
    """The crop as four other boxes would have cut it: 5% and 10% looser (edge pixels repeated),
    3% less on the left, 3% less on the right.

    Most real-scene misreads come from the box: a frame edge or bolt read as a character,
    an edge character cut off. Another view of the same plate rarely makes the same mistake.
    """
    h, w = crop.shape[:2]
    dx = round(w * 0.03)
    views = [cv2.copyMakeBorder(crop, round(h * f), round(h * f), round(w * f), round(w * f), cv2.BORDER_REPLICATE)
             for f in (0.05, 0.10)]
    return [*views, crop[:, dx:], crop[:, :w - dx]]


def fuse_reads(reads: Sequence[PlateText]) -> PlateText:
    """One read from several views of a plate: the text some view chose whose candidate
    probabilities, summed over all views, are highest; returned as the most confident view
    that chose it. Only chosen texts compete, so each view's format decision stands."""
    chosen = list(dict.fromkeys(r.text for r in reads if r.text))  # first look's text wins a tie
    if not chosen:
        return reads[0]
    votes: dict[str, float] = defaultdict(float)
    for r in reads:
        for text, p in r.candidates:
            votes[text] += p
    best = max(chosen, key=lambda t: votes[t])
    return max((r for r in reads if r.text == best), key=lambda r: r.confidence)


def plate_confidence(char_confidences: Sequence[float]) -> float:
    """A reading's confidence: the mean of its characters' confidences.

    Of the measures tried on held-out plates and on the detector's boxes on plate-free
    photos (scripts/calibrate_ocr.py), the mean separates plates from non-plates best: at
    the threshold that drops 2% of the plates it keeps half the false reads of the lowest
    step probability (the measure before it), models/plate_ocr.md.
    """
    return float(np.mean(char_confidences)) if len(char_confidences) else 0.0


class OnnxRecognizer:
    """:class:`alprd.vision.base.PlateRecognizer` backed by ``plate_ocr.onnx`` and onnxruntime.

    ``read`` takes BGR uint8 crops of any size and returns one :class:`PlateText` per
    crop. A crop whose confidence is below ``min_confidence`` (not a plate, unreadable)
    or that is not a usable image comes back as ``PlateText("", confidence, ())``.
    """

    def __init__(self, model_path: str | Path, threads: int = 1, min_confidence: float = 0.85,
                 split_two_line: bool = True, regions: Sequence[str] = (), top_n: int = 5,
                 second_read: float = 0.0, wide_aspect: float = 0.0, level_degrees: float = 0.0):
        self.model_path = Path(model_path)
        self.level_degrees = float(level_degrees)
        self.second_read = float(second_read)
        self.syntaxes = Syntaxes(list(regions)) if regions else None
        self.top_n = int(top_n)
        self.split_two_line = split_two_line
        self.min_confidence = float(min_confidence)
        self._session = open_session(self.model_path, threads, "OCR model", _FIX)
        meta = self._session.get_modelmeta().custom_metadata_map
        self.alphabet = meta.get("alphabet", ALPHABET)
        self.pad = meta.get("pad", PAD)
        self.head = meta.get("head", "slots")  # "slots" (fixed slots + pad) or "ctc" (blank last)
        self.quantized = meta.get("quantized", "")  # how scripts/quantize_ocr.py made it; "" = float
        inp = self._session.get_inputs()[0]
        out = self._session.get_outputs()[0]
        shape = inp.shape
        dynamic_width = self.head == "ctc" and len(shape) == 4 and not isinstance(shape[3], int)
        if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) \
                or not (isinstance(shape[3], int) or dynamic_width) or len(out.shape) != 3 \
                or out.shape[2] != len(self.alphabet) + 1 or meta.get("head", "slots") not in ("slots", "ctc"):
            raise ModelError(f"OCR model {self.model_path} has input {shape} and output {out.shape}; "
                             f"expected (N, 3, H, W) -> (N, slots or steps, {len(self.alphabet) + 1}): {_FIX}")
        self.height, self.width = int(shape[2]), IMG_W if dynamic_width else int(shape[3])
        # a model of fixed width (the files before stage 16) reads every crop at it
        self.wide_aspect = float(wide_aspect) if dynamic_width else 0.0
        self._input = inp.name
        self._output = out.name

    def read(self, crops: Sequence[np.ndarray]) -> list[PlateText]:
        """Read a batch of crops (see :meth:`_read`), each first levelled if its text rows slope
        by ``level_degrees`` or more (:func:`alprd.vision.skew.level`).

        A one-line read kept with a confidence below ``second_read`` is read again from
        :func:`second_views` of its crop, in one more batch, and :func:`fuse_reads` of the
        five replaces it (unless the fused one falls below ``min_confidence``): on held-out
        crops, tight and as the daemon cuts them, this fixes more reads than it breaks
        (models/plate_ocr.md, stage 14), at one extra batch for about a fifth of the plates.
        """
        crops = [level(c, self.level_degrees) for c in crops]
        results, joined = self._read(crops, self.min_confidence)
        unsure = [i for i, r in enumerate(results)
                  if r.text and r.confidence < self.second_read and i not in joined]
        if not unsure:
            return results
        views = [second_views(crops[i]) for i in unsure]
        again, _ = self._read([v for vs in views for v in vs], 0.0)
        at = 0
        for i, vs in zip(unsure, views, strict=True):
            fused = fuse_reads([results[i], *again[at:at + len(vs)]])
            at += len(vs)
            if fused.confidence >= self.min_confidence:
                results[i] = fused
        return results

    def _read(self, crops: Sequence[np.ndarray], min_confidence: float) -> tuple[list[PlateText], set[int]]:
        """One batch; a crop that looks like a two-line plate is also read line by line.
        Returns the reads and the indices read as two lines.

        The line crops from :func:`alprd.vision.lines.split_for_reader` go into the same
        onnxruntime batch; their joined text (top line first) replaces the whole-crop
        reading when both lines are read confidently. The whole-crop confidence is no
        guide there: a one-line model reads a stacked plate as confident garbage. What
        keeps one-line plates safe is the splitter, which proposes two lines only for
        two similar-height text bands (a state name is much smaller than the plate text).
        """
        results: list[PlateText] = [PlateText("", 0.0, ())] * len(crops)
        batch, where, two_line, joined_at = [], [], set(), set()
        for i, crop in enumerate(crops):
            try:
                image = isinstance(crop, np.ndarray) and crop.ndim >= 2  # resize_crop names what is not
                width = input_width(crop.shape, self.wide_aspect, self.width) if image else self.width
                small = resize_crop(crop, self.height, width)
            except (ValueError, cv2.error):
                continue
            batch.append(_to_input(small))
            where.append(i)
            lines = split_for_reader(crop, small) if self.split_two_line and self.head == "ctc" else None
            try:
                line_inputs = [preprocess(line, self.height, self.width) for line in lines or ()]
            except (ValueError, cv2.error):  # a line too thin to read: read the crop whole
                line_inputs = []
            if line_inputs:
                two_line.add(i)
                batch += line_inputs
        if not batch:
            return results, joined_at
        probs, decoded = self._infer(batch)
        row = 0
        for i in where:
            own = row
            text, conf, chars = decoded[own]
            row += 1
            joined = False
            if i in two_line:
                (top, c_top, ch_top), (bottom, c_bot, ch_bot) = decoded[row:row + 2]
                row += 2
                if top and bottom and len(top + bottom) <= MAX_SLOTS \
                        and min(c_top, c_bot) >= _TWO_LINE_MIN:
                    text, chars = top + bottom, ch_top + ch_bot
                    joined = True
            if not text:
                # the confidence is that of the likeliest character anywhere: low for a
                # non-plate, whatever the model's certainty that it saw nothing
                any_char = float(probs[own][:, :-1].max()) if len(probs[own]) else 0.0
                results[i] = PlateText("", float(min(any_char, conf)), ())
                continue
            conf = plate_confidence(chars)
            if conf < min_confidence:
                results[i] = PlateText("", conf, ())
            elif joined:  # two lines: no single probability row spells the whole plate
                joined_at.add(i)
                region = self._region(text)
                results[i] = PlateText(text, conf, chars, ((text, round(conf, 4)),), region,
                                       self.syntaxes is None or region is not None)
            else:
                results[i] = self._search(probs[own], text, conf, chars)
        return results, joined_at

    def _infer(self, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list]:
        """Each input's probabilities and greedy decoding, one onnxruntime batch per input width."""
        probs: list = [None] * len(inputs)
        decoded: list = [None] * len(inputs)
        for width in dict.fromkeys(x.shape[-1] for x in inputs):
            rows = [k for k, x in enumerate(inputs) if x.shape[-1] == width]
            p = self._session.run([self._output], {self._input: np.stack([inputs[k] for k in rows])})[0]
            d = decode_ctc(p, self.alphabet) if self.head == "ctc" else decode_slots(p, self.alphabet, self.pad)
            for k, pk, dk in zip(rows, p, d, strict=True):
                probs[k], decoded[k] = pk, dk
        return probs, decoded

    def _region(self, text: str) -> str | None:
        return self.syntaxes.region_of(text) if self.syntaxes is not None else None

    def _search(self, probs: np.ndarray, text: str, conf: float, chars: tuple[float, ...]) -> PlateText:
        """Candidates by beam search; with regions, the best text that fits one of their syntaxes."""
        if self.head != "ctc":
            return PlateText(text, conf, chars, ((text, conf),), self._region(text), True)
        raw = beam_search(probs, self.alphabet)
        region, format_ok = None, True
        if self.syntaxes is not None:
            fits = beam_search(probs, self.alphabet, syntaxes=self.syntaxes)
            best_raw = raw[0].probability if raw else 0.0
            if fits and fits[0].probability >= SYNTAX_MIN_RATIO * best_raw:
                region = fits[0].region
                if fits[0].text != text:
                    text = fits[0].text
                    chars = align(probs, text, self.alphabet)[1]
                    conf = plate_confidence(chars)
            else:
                region = self._region(text)
                format_ok = region is not None
            raw = sorted({c.text: c for c in raw + fits}.values(), key=lambda c: -c.probability)
        candidates = tuple((c.text, round(c.probability, 4)) for c in raw[:self.top_n])
        if text not in dict(candidates):
            candidates = ((text, round(conf, 4)), *candidates[:self.top_n - 1])
        return PlateText(text, conf, chars, candidates, region, format_ok)
