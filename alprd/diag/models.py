"""``diag models``: the model files are there, load, read a test plate, and run fast enough here.

The benchmark times detection + OCR on synthetic frames of the camera's size
(or its ROI) on this very device, so the figure is what the daemon will get.
"""

from __future__ import annotations

import time

import numpy as np

from alprd.capture import SyntheticSource
from alprd.config import Config
from alprd.daemon.status import model_info
from alprd.diag import Area, Check, DiagOptions
from alprd.vision import load_reader
from alprd.vision.base import ModelError

WARMUP_FRAMES = 2


def check(config: Config, options: DiagOptions) -> list[Check]:
    area = Area("models")
    v = config.vision
    present = True
    for role, path in v.model_files().items():
        info = model_info(path)
        if not info["present"]:
            present = False
            fix = f"copy {path.name} from the release's models/ folder, or set vision.{role}_model"
            if role == "verifier":
                fix += ' (= "" runs the detector alone)'
            area.fail(role, f"{path} missing", "the model file is not installed", fix)
        else:
            area.ok(role, f"{path.name}, {info['size_kb']} kB, sha256 {info['sha256']}, {info['modified']}")
    if not present:
        return area.checks
    try:
        reader = load_reader(v)
    except ModelError as err:
        area.fail("load", "cannot load", str(err), "reinstall the model files from the release")
        return area.checks
    _benchmark(area, config, reader, options.bench_frames)
    return area.checks


def _benchmark(area: Area, config: Config, reader, frames: int) -> None:
    cam = config.camera
    w, h = (cam.roi[2], cam.roi[3]) if cam.roi else (cam.width, cam.height)
    source = SyntheticSource(cam.model_copy(update={"width": w, "height": h, "realtime": False, "frames": 0}))
    source.open()
    timings, read = [], set()
    for i in range(frames + WARMUP_FRAMES):
        image = source.read().image
        t0 = time.perf_counter()
        sightings = reader.read(image)
        if i >= WARMUP_FRAMES:
            timings.append((time.perf_counter() - t0) * 1000)
        read |= {s.text for s in sightings}
    p50, p95 = np.percentile(timings, [50, 95])
    fps = 1000 / p50
    value = (f"{p50:.0f} ms/frame median, {p95:.0f} ms p95 at {w}x{h} over {frames} frames "
             f"= {fps:.1f} fps max (camera.fps {cam.fps:g}, vision.threads {config.vision.threads})")
    if fps >= cam.fps:
        area.ok("speed", value)
    else:
        area.warn("speed", value, "this device reads fewer frames than the camera sends; the newest frame "
                  "wins, so plates can be missed at speed",
                  "set camera.roi to the road, lower camera.fps, or raise vision.threads")
    shown = set(source.plates_shown)
    got = len(shown & read)
    value = f"read {got} of {len(shown)} synthetic test plates"
    if shown and got == 0:
        area.warn("accuracy", value, "the models read none of the test plates: wrong or damaged model files",
                  "reinstall both model files from the same release")
    else:
        area.ok("accuracy", value)
