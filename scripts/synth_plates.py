#!/usr/bin/env python3
"""Synthetic US-style plate crops for training the plate OCR (numpy, OpenCV, Pillow).

Two renderers:
* ``FontPlateRenderer`` draws plates with TrueType fonts (Debian font packages,
  installed by scripts/setup_train.sh): state-like backgrounds (plain, gradient,
  "scenic" shapes, dark), a state name band and slogan, 1-10 characters with
  spaces/dashes/emblems between groups, stacked small letters (decoration, *not* in
  the label, as in the OpenALPR ground truth), true two-line plates (label = top
  line then bottom line), registration stickers, frames and bolts.
* ``alprd.synth.render_plate`` (OpenCV Hershey fonts, what the demo camera draws).

``degrade_crop`` turns a tight plate image (a rendered plate or a real crop) into
what our detector hands the recogniser: random padding/shift/rotation/perspective,
then blur, noise, low light, glare, shadow, partial occlusion and JPEG.

Run it to write a preview sheet:  python scripts/synth_plates.py --fonts DIR --out sheet.png
"""

from __future__ import annotations

import argparse
import string
import sys
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alprd.synth import random_plate_text, render_plate

LETTERS = string.ascii_uppercase
DIGITS = string.digits
ALPHABET = LETTERS + DIGITS
# "O" is rare on US plates (most states print O and 0 alike; the ground truth says 0).
_LETTER_P = np.array([0.2 if c == "O" else 1.0 for c in LETTERS])
_LETTER_P /= _LETTER_P.sum()
STATES = ("ALABAMA", "ALASKA", "ARIZONA", "ARKANSAS", "California", "COLORADO", "Connecticut",
          "DELAWARE", "Florida", "GEORGIA", "HAWAII", "IDAHO", "Illinois", "INDIANA", "Iowa",
          "KANSAS", "Kentucky", "Louisiana", "MAINE", "Maryland", "Massachusetts", "MICHIGAN",
          "Minnesota", "MISSISSIPPI", "Missouri", "MONTANA", "NEBRASKA", "NEVADA",
          "New Hampshire", "New Jersey", "NEW MEXICO", "NEW YORK", "North Carolina",
          "NORTH DAKOTA", "OHIO", "OKLAHOMA", "Oregon", "Pennsylvania", "Rhode Island",
          "SOUTH CAROLINA", "South Dakota", "TENNESSEE", "TEXAS", "UTAH", "Vermont", "VIRGINIA",
          "WASHINGTON", "West Virginia", "WISCONSIN", "WYOMING", "WASHINGTON, DC")
SLOGANS = ("THE FIRST STATE", "Land of Lincoln", "Sportsman's Paradise", "Great Faces Great Places",
           "Live Free or Die", "Garden State", "Famous Potatoes", "America's Dairyland",
           "ALOHA STATE", "Vacationland", "Ocean State", "Green Mountain State", "Wild, Wonderful",
           "THE SILVER STATE", "Preserve the Trust", "Sunshine State", "dmv.gov", "First in Flight",
           "CRITICAL HABITAT", "10,000 lakes", "Empire State", "Grand Canyon State", "CENTENNIAL")


def random_text(rng: np.random.Generator) -> str:
    """Plate text for the font renderer: US layouts, some vanity plates, 2-10 characters."""
    r = rng.random()
    if r < 0.55:
        layout = str(rng.choice(["LLLDDDD", "DLLLDDD", "LLLDDD", "DDDLLL", "LLDDDDD", "DDDDLL",
                                 "DLLDDD", "DDLLDD", "DDDLDD", "LDDDDD", "DDDDDD", "LLLDDDL",
                                 "DDDLLLD", "LLLLDD", "DDDDD", "DLDDDDD", "DDLLLD", "DDDDLLL"]))
    elif r < 0.8:
        layout = "X" * int(rng.choice([4, 5, 6, 6, 7, 7, 7, 8]))
    elif r < 0.92:
        layout = "L" * int(rng.integers(3, 9))          # vanity words
    else:
        layout = "X" * int(rng.choice([2, 3, 9, 10]))
    out = []
    for c in layout:
        if c == "L" or (c == "X" and rng.random() < 0.5):
            out.append(LETTERS[int(rng.choice(26, p=_LETTER_P))])
        else:
            out.append(DIGITS[int(rng.integers(10))])
    return "".join(out)


def _colour(rng, lo, hi):
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _text_mask(text: str, font_path: str, size: int) -> np.ndarray:
    """Tightly cropped float mask (0..1) of ``text``."""
    font = _font(font_path, size)
    x0, y0, x1, y1 = font.getbbox(text)
    w, h = max(1, x1 - x0 + 4), max(1, y1 - y0 + 4)
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((2 - x0, 2 - y0), text, font=font, fill=255)
    m = np.asarray(img, dtype=np.float32) / 255
    ys, xs = np.nonzero(m > 0.05)
    if len(ys) == 0:
        return m
    return m[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


_decor_mask = lru_cache(maxsize=512)(_text_mask)  # state names, slogans: a fixed set


def _paste(canvas: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], colour) -> None:
    """Blend ``colour`` into ``canvas`` through ``mask`` resized to ``box`` (x, y, w, h), clipped."""
    x, y, w, h = box
    if w < 2 or h < 2:
        return
    m = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA if w < mask.shape[1] else cv2.INTER_LINEAR)
    H, W = canvas.shape[:2]
    cx1, cy1, cx2, cy2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if cx2 <= cx1 or cy2 <= cy1:
        return
    m = m[cy1 - y:cy2 - y, cx1 - x:cx2 - x, None]
    region = canvas[cy1:cy2, cx1:cx2].astype(np.float32)
    canvas[cy1:cy2, cx1:cx2] = (region * (1 - m) + np.float32(colour) * m).astype(np.uint8)


class FontPlateRenderer:
    """US-style plates drawn with TrueType fonts; ``render(rng) -> (BGR plate, text lines)``.

    The lines are one string, or two (top, bottom) for a two-line plate.
    """

    W, H = 240, 120

    def __init__(self, font_dir: str | Path):
        paths = sorted(str(p) for p in Path(font_dir).glob("*.tt[fc]"))
        if not paths:
            raise FileNotFoundError(f"no .ttf fonts in {font_dir}: run scripts/setup_train.sh")
        decor = ("Serif", "Italic", "Title")
        self.text_fonts = [p for p in paths if not any(d in Path(p).name for d in decor)] or paths
        self.decor_fonts = paths

    def _background(self, rng) -> tuple[np.ndarray, tuple, bool]:
        W, H = self.W, self.H
        dark = rng.random() < 0.15
        if dark:
            bg = np.array(_colour(rng, 0, 110), np.float32)
            ink = _colour(rng, 190, 256)
            if rng.random() < 0.4:
                ink = tuple(int(v) for v in rng.permutation(
                    [rng.integers(200, 256), rng.integers(180, 256), rng.integers(0, 120)]))
        else:
            base = [(255, 255, 255), (235, 245, 250), (200, 235, 250), (60, 210, 250), (250, 230, 200),
                    (210, 230, 210), (225, 225, 235)][int(rng.integers(7))]
            bg = np.clip(np.array(base, np.float32) + rng.normal(0, 12, 3), 0, 255)
            ink = _colour(rng, 0, 70)
            if rng.random() < 0.45:  # blue, red, green, maroon characters
                ink = tuple(int(v) for v in rng.permutation(
                    [rng.integers(90, 200), rng.integers(0, 70), rng.integers(0, 60)]))
        img = np.empty((H, W, 3), np.float32)
        img[:] = bg
        style = rng.random()
        if style < 0.35:  # vertical or horizontal gradient
            ramp = np.linspace(-1, 1, H if rng.random() < 0.7 else W, dtype=np.float32)
            ramp = ramp[:, None, None] if len(ramp) == H else ramp[None, :, None]
            img += ramp * rng.normal(0, 30, 3).astype(np.float32)
        if style > 0.45 and not dark:  # "scenic": mountains, sun, waves, a big faint logo
            for _ in range(int(rng.integers(1, 5))):
                col = np.clip(bg + rng.normal(0, 60, 3), 0, 255)
                if rng.random() < 0.5:
                    xs = np.sort(rng.integers(-20, W + 20, int(rng.integers(3, 7))))
                    ys = rng.integers(int(H * 0.35), H, len(xs))
                    pts = np.array([[xs[0], H], *zip(xs, ys, strict=True), [xs[-1], H]], np.int32)
                    cv2.fillPoly(img, [pts], col.tolist())
                elif rng.random() < 0.5:
                    cv2.circle(img, (int(rng.integers(0, W)), int(rng.integers(0, H))),
                               int(rng.integers(10, 60)), col.tolist(), -1)
                else:
                    y0 = int(rng.integers(0, H))
                    t = np.arange(W)
                    yy = (y0 + 8 * np.sin(t / rng.uniform(10, 40) + rng.uniform(0, 6))).astype(np.int32)
                    pts = np.stack([t, yy], 1).astype(np.int32)
                    cv2.polylines(img, [pts], False, col.tolist(), int(rng.integers(2, 12)))
            if rng.random() < 0.5:  # soften the scenery so the text stays dominant
                img = bg + (img - bg) * rng.uniform(0.3, 0.8)
        return np.clip(img, 0, 255).astype(np.uint8), ink, dark

    def render(self, rng: np.random.Generator, text: str | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
        W, H = self.W, self.H
        img, ink, _dark = self._background(rng)
        font = self.text_fonts[int(rng.integers(len(self.text_fonts)))]
        text = text if text is not None else random_text(rng)
        two_line = len(text) >= 4 and rng.random() < 0.12

        # state name on top, slogan at the bottom
        band_col = ink if rng.random() < 0.5 else _colour(rng, 0, 256)
        if rng.random() < 0.25:
            cv2.rectangle(img, (0, 0), (W, int(rng.integers(18, 30))), _colour(rng, 0, 256), -1)
        if rng.random() < 0.9:
            state = STATES[int(rng.integers(len(STATES)))]
            m = _decor_mask(state, self.decor_fonts[int(rng.integers(len(self.decor_fonts)))], 40)
            th = int(rng.integers(12, 24))
            tw = min(W - 10, int(m.shape[1] * th / m.shape[0] * rng.uniform(0.8, 1.2)))
            _paste(img, m, ((W - tw) // 2 + int(rng.integers(-15, 16)), int(rng.integers(1, 8)), tw, th), band_col)
        if rng.random() < 0.7:
            slogan = SLOGANS[int(rng.integers(len(SLOGANS)))]
            m = _decor_mask(slogan, self.decor_fonts[int(rng.integers(len(self.decor_fonts)))], 30)
            th = int(rng.integers(7, 14))
            tw = min(W - 20, int(m.shape[1] * th / m.shape[0]))
            _paste(img, m, ((W - tw) // 2, H - th - int(rng.integers(3, 10)), tw, th), band_col)

        # main characters
        if two_line:
            cut = int(rng.integers(2, len(text) - 1))
            lines = [text[:cut], text[cut:]]
            line_h = int(rng.integers(30, 40))
            ys = [int(rng.integers(18, 26)), 0]
            ys[1] = ys[0] + line_h + int(rng.integers(3, 10))
        else:
            lines = [text]
            line_h = int(rng.integers(44, 66))
            ys = [int((H - line_h) / 2 + rng.integers(-6, 12))]
        squeeze = rng.uniform(0.55, 1.05)
        stacked = (not two_line) and rng.random() < 0.15
        for line, y in zip(lines, ys, strict=True):
            sep = " "
            r = rng.random()
            if r < 0.25 and len(line) >= 4:
                k = int(rng.integers(2, len(line) - 1))
                sep_kind = rng.choice([" ", "-", "·", "  "])
                sep = str(sep_kind)
                groups = [line[:k], line[k:]]
            else:
                groups = [line]
            masks = [_text_mask(g, font, 64) for g in groups]
            widths = [m.shape[1] * line_h / m.shape[0] * squeeze for m in masks]
            gap = line_h * rng.uniform(0.25, 0.7) if len(groups) > 1 else 0
            total = sum(widths) + gap
            room = W - 28 - (36 if stacked else 0)
            scale = min(1.0, room / total)
            h = int(line_h * (scale if scale < 0.8 else 1.0))
            widths = [w * scale for w in widths]
            gap *= scale
            total = sum(widths) + gap
            x = (W - total) / 2 + rng.uniform(-6, 6) + (14 if stacked else 0)
            yy = y + (line_h - h) // 2
            for i, (m, w) in enumerate(zip(masks, widths, strict=True)):
                _paste(img, m, (int(x), yy, int(w), h), ink)
                x += w
                if i == 0 and len(groups) > 1:
                    gx = int(x + gap / 2)
                    if sep == "-":
                        cv2.rectangle(img, (gx - int(gap / 4), yy + h // 2 - 2),
                                      (gx + int(gap / 4), yy + h // 2 + 2), ink, -1)
                    elif sep == "·":
                        cv2.circle(img, (gx, yy + h // 2), max(2, int(gap / 5)), ink, -1)
                    elif sep == "  " and rng.random() < 0.7:  # an emblem between the groups
                        col = _colour(rng, 0, 256)
                        r_ = max(3, int(min(gap, h) / 2.5))
                        if rng.random() < 0.5:
                            cv2.circle(img, (gx, yy + h // 2), r_, col, -1)
                        else:
                            cv2.rectangle(img, (gx - r_, yy + h // 2 - r_), (gx + r_, yy + h // 2 + r_), col, -1)
                    x += gap
            if stacked:  # two small stacked letters/digits at the left: decoration, not read
                sm = _decor_mask(str(rng.choice(list(ALPHABET))), font, 40)
                sm2 = _decor_mask(str(rng.choice(list(ALPHABET))), font, 40)
                sx = int((W - total) / 2) - 4 + int(rng.integers(-3, 3))
                sh = h // 2 - 2
                _paste(img, sm, (sx, yy, int(sh * 0.7), sh), ink)
                _paste(img, sm2, (sx, yy + h - sh, int(sh * 0.7), sh), ink)

        if rng.random() < 0.5:  # registration stickers with small print
            for _ in range(int(rng.integers(1, 3))):
                sw, sh = int(rng.integers(18, 34)), int(rng.integers(12, 22))
                sx = int(rng.choice([4, W - sw - 4, int(rng.integers(4, W - sw - 4))]))
                sy = int(rng.choice([4, H - sh - 4]))
                cv2.rectangle(img, (sx, sy), (sx + sw, sy + sh), _colour(rng, 0, 256), -1)
                if rng.random() < 0.7:
                    s = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(1, 5))))
                    m = _text_mask(s, self.text_fonts[0], 30)
                    _paste(img, m, (sx + 2, sy + 2, sw - 4, sh - 4), _colour(rng, 0, 256))
        if rng.random() < 0.5:  # bolt holes
            for bx in (int(W * 0.2), int(W * 0.8)):
                for by in ((10, H - 10) if rng.random() < 0.5 else (10,)):
                    cv2.ellipse(img, (bx, by), (5, 4), 0, 0, 360, _colour(rng, 60, 200), -1)
        if rng.random() < 0.65:
            cv2.rectangle(img, (1, 1), (W - 2, H - 2), _colour(rng, 0, 256), int(rng.integers(1, 6)))
        return img, tuple(lines)


EU_COUNTRIES = ("D", "F", "I", "E", "NL", "B", "PL", "CZ", "SK", "HR", "A", "P", "GR", "RO", "BG", "H", "S",
                "FIN", "DK", "IRL", "LT", "LV", "EST", "SLO", "L", "M", "CY", "UK", "CH", "N")
EU_BLUE = (153, 51, 0)  # BGR of the EU band's blue (#003399)


def eu_text(rng: np.random.Generator) -> str:
    """Text that fits one of the European syntaxes the reader knows (alprd.vision.formats)."""
    from alprd.vision.formats import REGIONS, parse_syntax

    tokens = parse_syntax(REGIONS["eu"][int(rng.integers(len(REGIONS["eu"])))])
    out = []
    for t in tokens:
        chars = sorted(t.chars)
        out += [chars[int(rng.integers(len(chars)))] for _ in range(int(rng.integers(t.lo, t.hi + 1)))]
    return "".join(out)


def _groups(text: str, rng) -> list[str]:
    """Split where letters meet digits (most European plates space, dash or seal them there)."""
    cuts = [i for i in range(1, len(text)) if text[i].isdigit() != text[i - 1].isdigit()]
    if not cuts or rng.random() < 0.15:
        return [text]
    keep = [c for c in cuts if rng.random() < 0.85] or cuts[:1]
    return [text[a:b] for a, b in zip([0, *keep], [*keep, len(text)], strict=True)]


class EuPlateRenderer:
    """European plates: the blue EU band (stars, country code) at the left, sometimes a second band at
    the right (France's region and department number, Italy's year), white or yellow reflective
    background, groups split by spaces, dashes or Germany's two round seals. The band, its letters and
    the seals are not part of the label: the reader must learn to leave them out (issue 19).
    ``render(rng) -> (BGR plate, (text,))``, the same interface as ``FontPlateRenderer``."""

    H = 80

    def __init__(self, fonts: FontPlateRenderer):
        self.fonts = fonts

    def _band(self, img: np.ndarray, x0: int, w: int, rng, right: bool) -> None:
        H = self.H
        cv2.rectangle(img, (x0, 0), (x0 + w, H), EU_BLUE if rng.random() < 0.85 else _colour(rng, 80, 200), -1)
        yellow, white = (0, 204, 255), (255, 255, 255)
        font = self.fonts.text_fonts[int(rng.integers(len(self.fonts.text_fonts)))]
        if right:  # a logo blob and a small number or letters, as France and Italy print them
            cv2.circle(img, (x0 + w // 2, int(H * 0.3)), max(3, w // 4), _colour(rng, 0, 256), -1)
            label = "".join(str(rng.choice(list(DIGITS if rng.random() < 0.7 else LETTERS)))
                            for _ in range(int(rng.integers(2, 3))))
        else:  # the ring of twelve stars and the country code under it
            cx, cy, r = x0 + w / 2, H * 0.3, w * 0.3
            for k in range(12):
                a = 2 * np.pi * k / 12
                cv2.circle(img, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))), max(1, w // 14), yellow, -1)
            label = EU_COUNTRIES[int(rng.integers(len(EU_COUNTRIES)))]
        m = _decor_mask(label, font, 40)
        th = int(H * rng.uniform(0.22, 0.3))
        tw = min(w - 2, int(m.shape[1] * th / m.shape[0]))
        _paste(img, m, (x0 + (w - tw) // 2, int(H * 0.6), tw, th), white)

    def render(self, rng: np.random.Generator, text: str | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
        text = text if text is not None else eu_text(rng)
        H = self.H
        W = int(H * rng.uniform(3.6, 4.8))
        bg = (255, 255, 255) if rng.random() < 0.75 else (30, 200, 250)
        img = np.empty((H, W, 3), np.uint8)
        img[:] = np.clip(np.array(bg, np.float32) + rng.normal(0, 10, 3), 0, 255).astype(np.uint8)
        ink = _colour(rng, 0, 50)
        band_w = int(H * rng.uniform(0.4, 0.55))
        left = band_w if rng.random() < 0.9 else 0
        if left:
            self._band(img, 0, band_w, rng, right=False)
        right = band_w if rng.random() < 0.15 else 0
        if right:
            self._band(img, W - band_w, band_w, rng, right=True)
        font = self.fonts.text_fonts[int(rng.integers(len(self.fonts.text_fonts)))]
        groups = _groups(text, rng)
        sep = str(rng.choice(["space", "dash", "seal"])) if len(groups) > 1 else "space"
        masks = [_text_mask(g, font, 64) for g in groups]
        h = int(H * rng.uniform(0.62, 0.78))
        squeeze = rng.uniform(0.6, 1.0)
        widths = [m.shape[1] * h / m.shape[0] * squeeze for m in masks]
        gap = h * (0.55 if sep == "seal" else rng.uniform(0.2, 0.45))
        room = W - left - right - 8
        scale = min(1.0, room / (sum(widths) + gap * (len(groups) - 1)))
        widths, gap = [w * scale for w in widths], gap * scale
        x = left + 4 + (room - sum(widths) - gap * (len(groups) - 1)) / 2 + rng.uniform(-3, 3)
        y = int((H - h) / 2 + rng.integers(-3, 4))
        for i, (m, w) in enumerate(zip(masks, widths, strict=True)):
            _paste(img, m, (int(x), y, int(w), h), ink)
            x += w
            if i + 1 < len(groups):
                gx, gy, r = int(x + gap / 2), y + h // 2, max(2, int(gap / 3))
                if sep == "dash":
                    cv2.rectangle(img, (gx - r, gy - 2), (gx + r, gy + 2), ink, -1)
                elif sep == "seal" and i == 0:  # Germany: inspection sticker over the state seal
                    cv2.circle(img, (gx, gy - r - 1), r, _colour(rng, 0, 256), -1)
                    cv2.circle(img, (gx, gy + r + 1), r, (150, 150, 150), -1)
                x += gap
        if rng.random() < 0.7:
            cv2.rectangle(img, (1, 1), (W - 2, H - 2), ink, int(rng.integers(1, 4)))
        return img, (text,)


def hershey_plate(rng: np.random.Generator) -> tuple[np.ndarray, tuple[str, ...]]:
    """A plate from alprd.synth (what the demo camera shows), two-line one time in ten; (plate, lines)."""
    text = random_plate_text(rng)
    cut = int(rng.integers(2, len(text) - 1)) if len(text) >= 4 and rng.random() < 0.1 else 0
    return render_plate(text, rng, split=cut), ((text[:cut], text[cut:]) if cut else (text,))


def _motion_kernel(rng, k):
    ker = np.zeros((k, k), np.float32)
    ker[k // 2] = 1
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    ker = cv2.warpAffine(ker, rot, (k, k))
    return ker / max(ker.sum(), 1e-6)


def degrade_crop(plate: np.ndarray, rng: np.random.Generator, strength: float = 1.0,
                 out_h: tuple[int, int] = (18, 100)) -> np.ndarray:
    """A tight plate image -> a detector-like crop: loose/skewed, blurred, noisy, dim, JPEG."""
    ph, pw = plate.shape[:2]
    oh = int(rng.integers(out_h[0], out_h[1] + 1))
    ow = max(8, int(oh * rng.uniform(1.7, 2.3) * pw / ph / 2))
    # where the plate's corners land in the output crop: padding from -3% (cut) to +20%
    s = strength
    pad_l, pad_r = rng.uniform(-0.015, 0.16 * s + 0.01, 2) * ow
    pad_t, pad_b = rng.uniform(-0.02, 0.22 * s + 0.01, 2) * oh
    if rng.random() < 0.35:  # tight, like the real crops
        pad_l, pad_r, pad_t, pad_b = np.array([pad_l, pad_r, pad_t, pad_b]) * 0.2
    dst = np.array([[pad_l, pad_t], [ow - pad_r, pad_t], [ow - pad_r, oh - pad_b], [pad_l, oh - pad_b]],
                   np.float32)
    jit = 0.04 * s
    dst += (rng.normal(0, jit, (4, 2)) * np.array([ow, oh]) * 0.5).astype(np.float32)
    ang = np.deg2rad(rng.normal(0, 4 * s))
    c = dst.mean(0)
    R = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]], np.float32)
    dst = (dst - c) @ R.T * np.float32(oh / max(1.0, oh))
    dst += c
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    M = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    # draw at 2x then shrink: nicer anti-aliasing at small sizes
    if rng.random() < 0.5:
        border = {"borderMode": cv2.BORDER_REPLICATE}
    else:
        border = {"borderMode": cv2.BORDER_CONSTANT, "borderValue": _colour(rng, 0, 256)}
    S = np.diag([2, 2, 1]).astype(np.float64)
    img = cv2.warpPerspective(plate, S @ M, (ow * 2, oh * 2), flags=cv2.INTER_LINEAR, **border)
    img = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_AREA)
    f = img.astype(np.float32)

    if rng.random() < 0.15 * s:  # partial occlusion: a bar or a blob over an edge
        col = np.float32(_colour(rng, 0, 256))
        if rng.random() < 0.5:
            x1 = int(rng.integers(0, ow))
            w = max(1, int(ow * rng.uniform(0.03, 0.08)))
            y1 = int(oh * rng.uniform(0.6, 0.85))
            f[y1:, x1:x1 + w] = col
        else:
            edge = int(ow * rng.uniform(0.0, 0.06))
            f[:, :edge] = col if rng.random() < 0.5 else f[:, :edge]
            f[:, ow - edge:] = col if rng.random() < 0.5 else f[:, ow - edge:]
    if rng.random() < 0.3 * s:  # colour cast / channel gains
        f *= rng.uniform(0.75, 1.25, 3).astype(np.float32)
    if rng.random() < 0.25 * s:  # shadow over part of the plate
        xx = np.linspace(-1, 1, ow, dtype=np.float32)[None, :]
        yy = np.linspace(-1, 1, oh, dtype=np.float32)[:, None]
        a, b, c0 = rng.normal(0, 1, 3)
        m = ((a * xx + b * yy + c0 * 0.5) > 0).astype(np.float32)
        m = cv2.GaussianBlur(m, (0, 0), max(0.5, oh * 0.05))
        f *= (1 - m[..., None] * rng.uniform(0.3, 0.65))
    if rng.random() < 0.2 * s:  # glare: a bright soft ellipse
        gl = np.zeros((oh, ow), np.float32)
        cv2.ellipse(gl, (int(rng.integers(0, ow)), int(rng.integers(0, oh))),
                    (int(ow * rng.uniform(0.1, 0.5)), int(oh * rng.uniform(0.1, 0.5))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        gl = cv2.GaussianBlur(gl, (0, 0), max(1.0, oh * 0.12))
        f += gl[..., None] * rng.uniform(60, 200)
    # brightness / contrast / gamma; low light sometimes
    if rng.random() < 0.2 * s:
        f *= rng.uniform(0.3, 0.6)
    else:
        f = (f - 128) * rng.uniform(0.6, 1.3) + 128 + rng.normal(0, 20)
    f = np.clip(f, 0, 255)
    if rng.random() < 0.3:
        f = 255 * (f / 255) ** np.float32(rng.uniform(0.6, 1.6))
    if rng.random() < 0.4 * s:
        k = rng.random()
        if k < 0.6:
            f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.3, 0.5 + 0.7 * s) * oh / 40)
        else:
            f = cv2.filter2D(f, -1, _motion_kernel(rng, int(rng.choice([3, 5, 7]))))
    if rng.random() < 0.5 * s:
        f += rng.normal(0, rng.uniform(2, 10), f.shape).astype(np.float32)
    if rng.random() < 0.1:  # grayscale camera
        g = f.mean(axis=2, keepdims=True)
        f = np.repeat(g, 3, axis=2)
    img = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.1 * s:  # low resolution then upscaled (far plates)
        sc = rng.uniform(0.35, 0.7)
        small = cv2.resize(img, (max(4, int(ow * sc)), max(4, int(oh * sc))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (ow, oh), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        q = int(rng.integers(20, 92))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def negative_crop(rng: np.random.Generator) -> np.ndarray:
    """Something that is not a plate: road, car paint, noise, a blank or flat plate, stripes."""
    h = int(rng.integers(16, 90))
    w = int(h * rng.uniform(1.5, 2.6))
    kind = rng.random()
    if kind < 0.3:
        img = np.full((h, w, 3), _colour(rng, 0, 256), np.uint8)
        img = cv2.add(img, rng.normal(0, rng.uniform(1, 25), (h, w, 3)).clip(0, 255).astype(np.uint8))
    elif kind < 0.55:
        small = rng.integers(0, 256, (int(rng.integers(2, 8)), int(rng.integers(2, 12)), 3)).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind < 0.75:
        img = np.full((h, w, 3), _colour(rng, 0, 256), np.uint8)
        for _ in range(int(rng.integers(1, 8))):
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            if rng.random() < 0.5:
                cv2.line(img, p1, p2, _colour(rng, 0, 256), int(rng.integers(1, 6)))
            else:
                cv2.rectangle(img, p1, p2, _colour(rng, 0, 256), -1)
    else:  # an empty plate: background, frame, band, no characters
        img = render_plate("", rng) if rng.random() < 0.5 else np.full((120, 240, 3), _colour(rng, 150, 256), np.uint8)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 2.0)) if rng.random() < 0.5 else img
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fonts", default="/usr/share/fonts/truetype", help="folder of .ttf files (searched flat)")
    ap.add_argument("--out", default="synth_sheet.png")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    fr = FontPlateRenderer(args.fonts)
    tiles = []
    for i in range(args.n):
        plate, lines = fr.render(rng) if i % 4 else hershey_plate(rng)
        crop, text = degrade_crop(plate, rng), " / ".join(lines)
        tile = cv2.resize(crop, (256, 128))
        cv2.putText(tile, text, (4, 124), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
        tiles.append(tile)
    while len(tiles) % 5:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[i:i + 5]) for i in range(0, len(tiles), 5)])
    cv2.imwrite(args.out, sheet)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
