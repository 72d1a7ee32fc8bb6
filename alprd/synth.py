"""Synthetic US-style licence plates and street scenes, drawn with OpenCV only.

Used at run time by the synthetic camera (demo, tests) and at training time as
one of the renderers for the OCR and detector training data. It needs no font
files: OpenCV's built-in Hershey fonts are enough for a plausible plate.
"""

from __future__ import annotations

import string

import cv2
import numpy as np

ALPHABET = string.ascii_uppercase + string.digits
PLATE_W, PLATE_H = 300, 150  # a US plate is 12 x 6 inches

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX)
_STATES = ("CALIFORNIA", "TEXAS", "OHIO", "VIRGINIA", "NEW JERSEY", "IDAHO", "NEVADA",
           "OREGON", "ILLINOIS", "WISCONSIN", "FLORIDA", "ARIZONA")


def random_plate_text(rng: np.random.Generator) -> str:
    """A plausible US plate string: 5-8 characters, mostly letter/digit blocks."""
    layout = rng.choice(["LLLDDDD", "DLLLDDD", "LLLDDD", "DDDLLL", "LLDDDDD", "LLLLDD", "DLDDDDD", "XXXXXXX"])
    if rng.random() < 0.15:
        layout = "X" * int(rng.integers(5, 9))
    letters, digits = string.ascii_uppercase, string.digits
    pool = {"L": letters, "D": digits, "X": ALPHABET}
    return "".join(pool[c][int(rng.integers(len(pool[c])))] for c in layout)


def render_plate(text: str, rng: np.random.Generator, height: int = PLATE_H, split: int = 0) -> np.ndarray:
    """Render ``text`` on a plate with a state band and frame; returns BGR uint8.

    ``split`` > 0 draws a two-line (motorcycle-style) plate instead: ``text[:split]``
    over ``text[split:]``, on a plate 4 units wide by 3 high.
    """
    light = rng.random() < 0.85
    bg = rng.integers(200, 256, 3) if light else rng.integers(0, 90, 3)
    ink = rng.integers(0, 80, 3) if light else rng.integers(200, 256, 3)
    if light and rng.random() < 0.35:  # coloured (blue/red/green) characters
        ink = np.array([rng.integers(80, 200), rng.integers(0, 60), rng.integers(0, 60)])[rng.permutation(3)]
    plate = np.empty((PLATE_H, PLATE_W, 3), np.uint8)
    plate[:] = bg
    if rng.random() < 0.5:  # vertical gradient, like printed backgrounds
        ramp = np.linspace(-25, 25, PLATE_H, dtype=np.float32)[:, None, None]
        plate = np.clip(plate.astype(np.float32) + ramp * rng.choice([-1, 1]), 0, 255).astype(np.uint8)

    font = _FONTS[int(rng.integers(len(_FONTS)))]
    thickness = int(rng.integers(4, 8))
    scale = 1.0
    if split > 0:
        plate = cv2.resize(plate, (PLATE_W, PLATE_W * 3 // 4))
        _two_lines(plate, (text[:split], text[split:]), font, thickness, ink, rng)
    else:
        (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
        if tw > 0 and th > 0:  # an empty text gives a blank plate (a negative for OCR training)
            scale = min(270 / tw, 75 / th) * rng.uniform(0.85, 1.0)
            thickness = max(2, int(thickness * scale / 1.6))
            (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
            x = (PLATE_W - tw) // 2 + int(rng.integers(-6, 7))
            y = 30 + (100 + th) // 2 + int(rng.integers(-4, 5))
            cv2.putText(plate, text, (x, y), font, scale, tuple(int(c) for c in ink), thickness, cv2.LINE_AA)
    ph, pw = plate.shape[:2]

    band_ink = tuple(int(c) for c in (ink if rng.random() < 0.5 else rng.integers(0, 256, 3)))
    state = _STATES[int(rng.integers(len(_STATES)))]
    (sw, _), _ = cv2.getTextSize(state, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
    cv2.putText(plate, state, ((PLATE_W - sw) // 2, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, band_ink, 2, cv2.LINE_AA)
    if rng.random() < 0.5:
        cv2.putText(plate, "DMV.GOV" if rng.random() < 0.5 else "SUNSHINE STATE", (80, ph - 7),
                    cv2.FONT_HERSHEY_PLAIN, 1.0, band_ink, 1, cv2.LINE_AA)
    if rng.random() < 0.4:  # registration sticker in a corner
        cx = 8 if rng.random() < 0.5 else pw - 40
        cv2.rectangle(plate, (cx, 8), (cx + 32, 30), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    frame = tuple(int(c) for c in rng.integers(0, 256, 3))
    cv2.rectangle(plate, (1, 1), (pw - 2, ph - 2), frame, int(rng.integers(2, 7)))
    if height != ph:
        plate = cv2.resize(plate, (round(height * pw / ph), height), interpolation=cv2.INTER_AREA)
    return plate


def _two_lines(plate: np.ndarray, lines: tuple[str, str], font: int, thickness: int, ink, rng) -> None:
    """Draw two centred text lines of one size between the state band and the bottom edge."""
    ph, pw = plate.shape[:2]
    sizes = [cv2.getTextSize(t or " ", font, 1.0, thickness)[0] for t in lines]
    line_h = (ph - 50) / 2 - 6
    scale = min(min((pw - 40) / max(1, w), line_h / max(1, h)) for w, h in sizes) * rng.uniform(0.85, 1.0)
    thickness = max(2, int(thickness * scale / 1.6))
    for i, text in enumerate(lines):
        (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
        y = int(36 + (i + 1) * (line_h + 6) - (line_h - th) / 2)
        cv2.putText(plate, text, ((pw - tw) // 2, y), font, scale, tuple(int(c) for c in ink), thickness, cv2.LINE_AA)


def street_scene(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A cheap road-like background: sky/asphalt gradient with noise and lane marks."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    sky = np.array([200, 170, 140], np.float32)
    road = np.array([70, 70, 75], np.float32)
    horizon = rng.uniform(0.25, 0.45)
    mix = np.clip((y - horizon) * 8, 0, 1)[..., None]
    img = (sky * (1 - mix) + road * mix) * np.ones((height, width, 1), np.float32)
    img += rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    for k in range(6):
        x = int(width * (0.1 + 0.15 * k))
        cv2.line(out, (x, height), (width // 2, int(height * horizon)), (200, 200, 200), 3)
    return out


def paste_plate_on_car(scene: np.ndarray, plate: np.ndarray, center: tuple[int, int],
                       plate_width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Draw a car body around a plate at ``center``; returns the plate box (x1, y1, x2, y2)."""
    h, w = scene.shape[:2]
    pw = int(plate_width)
    ph = max(4, pw // 2)
    cx, cy = center
    car_w, car_h = int(pw * 4.5), int(pw * 2.6)
    colour = tuple(int(c) for c in rng.integers(20, 235, 3))
    cv2.rectangle(scene, (cx - car_w // 2, cy - int(car_h * 0.7)), (cx + car_w // 2, cy + int(car_h * 0.3)),
                  colour, -1)
    cv2.rectangle(scene, (cx - int(car_w * 0.35), cy - int(car_h * 0.65)),
                  (cx + int(car_w * 0.35), cy - int(car_h * 0.35)), (40, 40, 40), -1)
    x1, y1 = max(0, cx - pw // 2), max(0, cy - ph // 2)
    x2, y2 = min(w, x1 + pw), min(h, y1 + ph)
    if x2 - x1 < 4 or y2 - y1 < 2:
        return x1, y1, x2, y2
    scene[y1:y2, x1:x2] = cv2.resize(plate, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    return x1, y1, x2, y2


def side_view(crop: np.ndarray, degrees: float) -> np.ndarray:
    """A plate crop as a box around it cuts it when the plate is seen from the side: its rows sloping
    by ``degrees`` (down to the right when positive), its characters upright, the box a little looser
    than the crop and as much taller as the slope needs (edge pixels repeated)."""
    t = np.tan(np.radians(degrees))
    h, w = crop.shape[:2]
    pad = int(abs(t) * w / 2) + 1
    boxed = cv2.copyMakeBorder(crop, h // 5 + pad, h // 5 + pad, w // 20, w // 20, cv2.BORDER_REPLICATE)
    bh, bw = boxed.shape[:2]
    shear = np.float32([[1, 0, 0], [t, 1, -t * bw / 2]])
    return cv2.warpAffine(boxed, shear, (bw, bh), borderMode=cv2.BORDER_REPLICATE)
