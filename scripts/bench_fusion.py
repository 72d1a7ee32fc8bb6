"""Multi-frame fusion benchmark: per-pass exact reads, fused vs the best single frame.

`alprd run` stores one read per pass of a vehicle: its sightings fused character by
character (``alprd.daemon.dedupe.Track.fused``). This measures what that buys over keeping
the single most confident frame, on passes made from real photos: each labelled plate of a
flat set (name.jpg + name.txt, e.g. ../shared/datasets/scenes-br) becomes a pass of
``--frames`` frames in which the car approaches: the view zooms from far (plate a fifth of its
photo size) to near, with a perspective that changes per frame, motion blur, sensor
noise and JPEG. Every frame goes through the real reader (detector, verifier, OCR with the
set's region) and the daemon's Deduper; the pass's read is the track with the most sightings.
The synthetic demo camera (--demo) is scored the same way against the plates it drew.

    .venv/bin/python scripts/bench_fusion.py ../shared/datasets/scenes-br --regions br
    .venv/bin/python scripts/bench_fusion.py ../shared/datasets/scenes-eu --regions eu
    .venv/bin/python scripts/bench_fusion.py --demo 400

An evaluation only: nothing here is trained or tuned on the scene sets.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from alprd.config import Config, config_from_dict
from alprd.daemon.dedupe import Deduper, Observation, Track
from alprd.plates import edit_distance
from alprd.vision import load_reader
from alprd.vision.evaluate import load_dataset


def approach(image: np.ndarray, box: tuple[float, float, float, float], n: int,
             rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` frames of a car coming closer: zoom towards the plate, perspective, blur, noise, JPEG."""
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    out_w, out_h = w, h
    frames = []
    for i in range(n):
        near = i / max(1, n - 1)
        scale = 0.2 + 0.8 * near                         # plate size relative to the photo's
        skew = (1 - near) * rng.uniform(-0.08, 0.08)      # the angle flattens as the car nears
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = src.copy()
        dst[:, 0] = cx + (dst[:, 0] - cx) * scale + rng.normal(0, 2, 4)
        dst[:, 1] = cy + (dst[:, 1] - cy) * scale + rng.normal(0, 2, 4)
        dst[[1, 2], 1] += np.float32(skew * h * scale)
        dst += np.float32([w / 2 - cx, h / 2 - cy]) * (1 - scale)  # keep the plate in view
        m = cv2.getPerspectiveTransform(src, dst)
        f = cv2.warpPerspective(image, m, (out_w, out_h), borderMode=cv2.BORDER_REPLICATE)
        k = int(rng.choice([1, 3, 5, 7]))
        if k > 1:
            ker = np.zeros((k, k), np.float32)
            ker[k // 2] = 1.0 / k
            f = cv2.filter2D(f, -1, ker)
        f = np.clip(f.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), f.shape), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 90))])
        frames.append(cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else f)
    return frames


def run_pass(reader, frames: list[np.ndarray], cfg: Config, fps: float = 10.0) -> list[Track]:
    """The daemon's per-frame path: read, then feed the Deduper at the frame's time."""
    dd: Deduper = Deduper(cfg.pipeline.track_gap_s, cfg.pipeline.reread_window_s)
    closed: list[Track] = []
    for i, image in enumerate(frames):
        obs = [Observation(s.text, s.confidence, i / fps, None, s.char_confidences, s.candidates)
               for s in reader.read(image)]
        closed += dd.feed(obs, i / fps)
    return closed + dd.flush()


class Tally:
    def __init__(self) -> None:
        self.passes = self.read = self.fused = self.best = self.in_candidates = 0
        self.sightings = self.sightings_exact = 0

    def add(self, truth: str, track: Track | None) -> None:
        self.passes += 1
        if track is None:
            return
        self.read += 1
        self.fused += track.fused()[0] == truth
        self.best += track.best.text == truth
        self.in_candidates += any(t == truth for t, _ in track.candidates(10))
        self.sightings += len(track.votes)
        self.sightings_exact += sum(o.text == truth for o in track.votes)

    def summary(self) -> dict:
        def pct(k: int) -> float | None:
            return round(100 * k / self.passes, 1) if self.passes else None
        return {"passes": self.passes, "passes_read_pct": pct(self.read), "fused_exact_pct": pct(self.fused),
                "best_frame_exact_pct": pct(self.best), "truth_in_top10_pct": pct(self.in_candidates),
                "single_sighting_exact_pct": round(100 * self.sightings_exact / self.sightings, 1)
                if self.sightings else None}


def bench_scenes(folder: str, regions: list[str], frames: int, seed: int) -> dict:
    cfg = Config()
    reader = load_reader(cfg.vision.model_copy(update={"regions": regions}))
    rng, tally = np.random.default_rng(seed), Tally()
    for sample in load_dataset(folder):
        image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
        for t in sample.truth:
            if image is None or not t.plate:
                continue
            tracks = run_pass(reader, approach(image, t.box, frames, rng), cfg)
            near = [tr for tr in tracks if edit_distance(tr.fused()[0], t.plate, 3) <= 3]
            tally.add(t.plate, max(near, key=lambda tr: tr.frames, default=None))
    return tally.summary()


def bench_demo(n_frames: int) -> dict:
    from alprd.capture import SyntheticSource

    cfg = config_from_dict({"camera": {"frames": n_frames, "realtime": False}})
    src = SyntheticSource(cfg.camera)
    src.open()
    frames = []
    while (frame := src.read()) is not None:
        frames.append(frame.image)
    tracks = run_pass(load_reader(cfg.vision), frames, cfg, fps=cfg.camera.fps)
    tally = Tally()
    for plate in src.plates_shown:
        near = [tr for tr in tracks if edit_distance(tr.fused()[0], plate, 2) <= 2]
        tally.add(plate, max(near, key=lambda tr: tr.frames, default=None))
    return tally.summary()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", help="flat folder: name.jpg + name.txt with the plate text")
    ap.add_argument("--regions", default="us", help="plate regions, as the set's own (e.g. br, eu)")
    ap.add_argument("--frames", type=int, default=12, help="frames per pass")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--demo", type=int, default=0, help="instead: this many frames of the demo camera")
    args = ap.parse_args()
    if args.demo:
        out = {"set": "demo camera", **bench_demo(args.demo)}
    elif args.dataset:
        out = {"set": args.dataset, "regions": args.regions, "frames_per_pass": args.frames,
               **bench_scenes(args.dataset, args.regions.split(","), args.frames, args.seed)}
    else:
        ap.error("give a dataset folder or --demo N")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
