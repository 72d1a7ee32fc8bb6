"""Core commands: run, demo, read, eval, config check."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from datetime import date, timedelta
from pathlib import Path

from pydantic import ValidationError

from alprd.app import build_daemon
from alprd.auth import Users
from alprd.capture import CaptureError, SyntheticSource
from alprd.config import Config, ConfigError, VisionConfig, load_config, service_problems
from alprd.daemon import Daemon
from alprd.hotlist import repository
from alprd.hotlist.entries import Entry
from alprd.imageio import ImageError, read_image
from alprd.log import setup_logging
from alprd.records import Read
from alprd.store import Store, StoreError, open_store
from alprd.vision import load_reader
from alprd.vision.base import ModelError
from alprd.vision.reader import Sighting

FIELD_ERRORS = (ModelError, CaptureError, StoreError)
SECRET_KEYS = {"password", "sync_key"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the daemon (capture, read, store, alert, upload)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run the pipeline on a synthetic street, no hardware or broker needed")
    p.add_argument("--frames", type=int, default=240,
                   help="frames to render (default 240, 16 s at 15 fps; 0 = until Ctrl-C, to try the screen)")
    p.add_argument("--state-dir", default="state/demo", help="where the demo database goes")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("read", help="read the plates in still images")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("eval", help="score detection and reading on a labelled folder")
    p.add_argument("dataset", type=Path, help="YOLO folder (plate-detect) or name.jpg + name.txt folder")
    p.add_argument("--splits", default="valid,test", help="YOLO splits to use (default valid,test)")
    p.add_argument("--regions", default="", help="plate regions to expect instead of vision.regions, "
                                                 "e.g. br or us,br (as the set's own region)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate a config file and print the effective settings")
    c.add_argument("file", type=Path)
    c.set_defaults(func=cmd_config_check, needs_config=False)


def _fail(err: Exception) -> int:
    print(f"alprd: {err}", file=sys.stderr)
    return 1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from alprd.cli import config_path  # the package imports this module

    problems = service_problems(config)
    if problems:
        source = config_path(args) or "none found, so the defaults"
        print(f"alprd run: refused: the configuration ({source}) is not set up for this unit:\n"
              + "".join(f"  {p}\n" for p in problems)
              + "Edit the file (or pass --config FILE); `alprd demo` runs the synthetic camera.", file=sys.stderr)
        return 2
    setup_logging(config.logging)
    try:
        daemon = build_daemon(config)
        asyncio.run(daemon.run())
    except FIELD_ERRORS as err:
        return _fail(err)
    return 0


def format_read(read: Read) -> str:
    where = f"{read.lat:.5f},{read.lon:.5f}" if read.lat is not None else "no GPS"
    return (f"{read.ts[11:19]}Z  {read.plate:<9} conf {read.confidence:.2f}  "
            f"frames {read.frames:>2}  {read.camera_id}  {where}")


DEMO_USER, DEMO_PASSWORD = "demo", "demo-screen-1"  # the demo's own database only
DEMO_CATEGORIES = (("stolen_vehicle", 2, "silver hatchback"), ("amber_alert", 1, "child seen in rear seat"),
                   ("felony_vehicle", 1, "armed robbery suspect vehicle"), ("bolo", 3, "missing since Friday"))


def demo_hotlist(source: SyntheticSource, cars: int) -> list[Entry]:
    """A small hotlist of every third plate the synthetic street will show, so the demo alerts."""
    plates = source.upcoming_plates(cars)[1::3]
    return [Entry(plate, category, priority=priority, case_number=f"CFS-DEMO-{i + 1:02d}", note=note,
                  source="demo list", expires=(date.today() + timedelta(days=30)).isoformat())
            for i, (plate, (category, priority, note)) in
            enumerate(zip(plates, DEMO_CATEGORIES * len(plates), strict=False))]


DEMO_POSITION = (39.7392, -104.9903)  # a street corner for the demo's fixed GPS
DEMO_CARS = 150  # listed among the first 150 cars: alerts for the first few minutes (a car every 1.3 s)


def _demo_store(cfg: Config) -> Store:
    """The demo database with the demo user (operator) and the demo hotlist in place."""
    store = open_store(cfg.store)
    users = Users(store, cfg.policy)
    if users.get(DEMO_USER) is None:
        users.add(DEMO_USER, "operator", DEMO_PASSWORD, date.today().isoformat(), by=None)
    probe = SyntheticSource(cfg.camera)
    probe.open()
    repository.replace_department_list(store, demo_hotlist(probe, DEMO_CARS), "demo", version=1)
    return store


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    """The daemon's main job on a synthetic camera: real models, real SQLite, no broker; the screen on."""
    cfg = config.model_copy(update={
        "camera": config.camera.model_copy(update={"source": "synthetic", "frames": args.frames}),
        "store": config.store.model_copy(update={"state_dir": Path(args.state_dir)}),
        # a position for the reads (and the screen) unless the config has a receiver
        "gps": config.gps if config.gps.mode != "none" else config.gps.model_copy(
            update={"mode": "fixed", "latitude": DEMO_POSITION[0], "longitude": DEMO_POSITION[1]}),
    })
    setup_logging(cfg.logging.model_copy(update={"level": "error"}))  # reads and hits are printed below
    try:
        source = SyntheticSource(cfg.camera)
        store = _demo_store(cfg)
        daemon: Daemon = build_daemon(cfg, store=store, source=source)
    except FIELD_ERRORS as err:
        return _fail(err)
    read_plates: list[str] = []

    def show(read: Read) -> None:  # after the hotlist matcher: a hit is stored by now
        read_plates.append(read.plate)
        print(format_read(read), flush=True)
        for a in store.query("select plate, pattern, category, priority, case_number from alerts where read_id = ?",
                             [read.id]):
            print(f"  HOTLIST HIT {a['plate']} -> {a['pattern']} {a['category']} p{a['priority']} "
                  f"case {a['case_number']} (verify through NCIC/state systems before acting)", flush=True)

    async def announce_screen(stop: asyncio.Event) -> None:
        while not stop.is_set():
            screen = daemon.status().get("screen", {})
            if screen.get("url") or screen.get("error"):
                print(f"screen: {screen['url']} (user {DEMO_USER}, password {DEMO_PASSWORD})" if screen.get("url")
                      else f"screen: not available: {screen['error']}", flush=True)
                return
            await asyncio.sleep(0.1)

    daemon.on_read(show)
    if cfg.screen.enabled:
        daemon.add_service("demo_screen", announce_screen)
    length = f"{args.frames} synthetic" if args.frames else "endless (Ctrl-C ends)"
    print(f"alprd demo: {length} 1920x1080 frames at {cfg.camera.fps:g} fps -> {cfg.store.path}")
    stats = asyncio.run(daemon.run())
    shown = source.plates_shown
    correct = len(set(shown) & set(read_plates))
    backlog, _ = daemon.store.backlog()
    alerts = store.query("select count(*) as n from alerts")[0]["n"]
    print("\nsummary")
    print(f"  frames: {stats.frames_captured} captured, {stats.frames_processed} processed, "
          f"{stats.frames_dropped} dropped; {stats.fps:.1f} fps; inference {stats.inference_ms_avg:.1f} ms/frame")
    print(f"  reads: {stats.reads} ({stats.rereads} re-reads merged); plates shown {len(shown)}, "
          f"read exactly {correct}; hotlist alerts stored {alerts}")
    print(f"  stored: {daemon.store.count_reads()} reads in {cfg.store.path}; "
          f"{backlog} waiting for upload (no broker configured)")
    print(f"  peak memory: {peak_rss_mb():.0f} MB")
    return 0


def sighting_json(s: Sighting) -> dict:
    """``alprd read --json``: one plate. ``box`` is in image pixels, top-left (x1, y1) inclusive
    and bottom-right (x2, y2) exclusive; ``candidates`` are [text, probability], best first."""
    d = s.detection
    return {"plate": s.text, "confidence": round(s.confidence, 4),
            "char_confidences": [round(c, 4) for c in s.char_confidences],
            "box": {"x1": round(d.x1, 1), "y1": round(d.y1, 1), "x2": round(d.x2, 1), "y2": round(d.y2, 1)},
            "detector_score": round(d.score, 4),
            "candidates": [[t, p] for t, p in s.candidates],
            "region": s.region, "format_ok": s.format_ok}


def cmd_read(args: argparse.Namespace, config: Config) -> int:
    try:
        reader = load_reader(config.vision)
    except ModelError as err:
        return _fail(err)
    status = 0
    for path in args.images:
        try:
            image = read_image(path)
        except ImageError as err:
            print(f"alprd: {err}; skipped", file=sys.stderr)
            status = 1
            continue
        sightings = reader.read(image)
        if args.json:
            print(json.dumps({"image": str(path), "plates": [sighting_json(s) for s in sightings]}))
            continue
        print(f"{path}: {len(sightings)} plate(s)")
        for s in sightings:
            d = s.detection
            others = ", ".join(t for t, _ in s.candidates if t != s.text)
            print(f"  {s.text:<9} conf {s.confidence:.2f}  box {d.x1:.0f},{d.y1:.0f},{d.x2:.0f},{d.y2:.0f}"
                  f"  det {d.score:.2f}  region {s.region or '-'}{'' if s.format_ok else ' (fits none)'}"
                  + (f"  or {others}" if others else ""))
    return status


def cmd_eval(args: argparse.Namespace, config: Config) -> int:
    from alprd.vision.evaluate import evaluate, load_dataset

    vision = config.vision
    if args.regions:
        try:
            vision = VisionConfig.model_validate({**vision.model_dump(), "regions": args.regions.split(",")})
        except ValidationError as err:
            return _fail(ValueError(f"--regions {args.regions}: {err.errors()[0]['msg']}"))
    try:
        reader = load_reader(vision)
        samples = load_dataset(args.dataset, tuple(args.splits.split(",")))
    except (ModelError, FileNotFoundError) as err:
        return _fail(err)
    summary = evaluate(reader, samples).summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            if isinstance(value, dict):
                value = "  ".join(f"{k} {'n/a' if v is None else v}" for k, v in value.items())
            print(f"{key:>22}: {'n/a' if value is None else value}")
    return 0


def cmd_config_check(args: argparse.Namespace, config: Config) -> int:
    try:
        checked = load_config(args.file)
    except ConfigError as err:
        print(f"{err}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK")
    print(json.dumps(_mask_secrets(checked.model_dump(mode="json")), indent=2))
    return 0


def _mask_secrets(value):
    """Never echo passwords or keys to a terminal (or a technician's screenshot)."""
    if isinstance(value, dict):
        return {k: "***" if k in SECRET_KEYS and value[k] else _mask_secrets(value[k]) for k in value}
    return value
