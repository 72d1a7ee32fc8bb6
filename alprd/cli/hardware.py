"""Field commands: ``alprd status`` (health of the running daemon) and ``alprd diag``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alprd.config import Config, ConfigError, load_config
from alprd.diag import AREAS, DiagOptions, format_checks, run, worst
from alprd.log import setup_logging
from alprd.records import parse_iso

EXIT_PROBLEM, EXIT_NOT_RUNNING = 1, 3
SERVICE_STATE_DIR = "/var/lib/alprd"  # systemd StateDirectory=alprd
STALE_AFTER_INTERVALS = 3  # status file older than this many write intervals: daemon hung or gone
Line = tuple[str, str, str]  # (what, OK/WARN/FAIL, text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="one-screen health summary of the running daemon")
    p.add_argument("--file", type=Path, help="status file (default <store.state_dir>/<status.file>)")
    p.add_argument("--json", action="store_true", help="print the raw status file")
    p.set_defaults(func=cmd_status, needs_config=False)

    p = sub.add_parser("diag", help="field diagnostics: PASS/WARN/FAIL with cause and fix")
    p.add_argument("area", choices=[*AREAS, "all"])
    p.add_argument("--seconds", type=float, default=3.0, help="how long to watch camera and GPS (default 3)")
    p.add_argument("--out", type=Path, help="folder for the camera snapshot (default <state_dir>/diag)")
    p.add_argument("--frames", type=int, default=20, help="frames for the model benchmark (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per check")
    p.set_defaults(func=cmd_diag)


# -- diag ------------------------------------------------------------------------

def cmd_diag(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config.logging.model_copy(update={"level": "error"}))
    options = DiagOptions(seconds=args.seconds, out_dir=args.out, bench_frames=args.frames)
    checks = []
    for area in AREAS if args.area == "all" else (args.area,):
        found = run(area, config, options)
        checks += found
        if args.json:
            for c in found:
                print(json.dumps(c.as_dict()), flush=True)
        else:
            print(format_checks(found), flush=True)
    level = worst(checks)
    if not args.json:
        counts = {lv: sum(c.level == lv for c in checks) for lv in ("PASS", "WARN", "FAIL")}
        print(f"\n{level}: {counts['PASS']} passed, {counts['WARN']} warnings, {counts['FAIL']} failed")
    return EXIT_PROBLEM if level == "FAIL" else 0


# -- status ------------------------------------------------------------------------

def status_file(args: argparse.Namespace) -> Path:
    """--file, else from the config; one that cannot be read is said so, and the service's file is tried."""
    from alprd.cli import DEFAULT_CONFIG, config_path  # the package imports this module

    if args.file:
        return args.file
    path = config_path(args)
    try:
        config = load_config(path)
    except ConfigError as err:  # technicians (the alprd group) may not read the 0600 config
        installed = path == DEFAULT_CONFIG
        config = Config.model_validate({"store": {"state_dir": SERVICE_STATE_DIR}} if installed else {})
        fallback = config.store.state_dir / config.status.file
        print(f"alprd status: cannot read the configuration: {err}\n"
              f"  trying {fallback} instead; pass --file to choose", file=sys.stderr)
        return fallback
    return config.store.state_dir / config.status.file


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    path = status_file(args)
    try:
        snap = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"alprd status: no status file at {path}: the daemon is not running here "
              "(`sudo systemctl status alprd`), or pass --file", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except PermissionError:
        print(f"alprd status: {path}: permission denied; run with sudo or join the alprd group "
              "(`sudo usermod -aG alprd $USER`, then log in again)", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except json.JSONDecodeError as err:
        print(f"alprd status: {path} is not valid JSON ({err})", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(snap, indent=1))
    header, running = status_header(snap, datetime.now(UTC))
    lines = status_lines(snap)
    if not args.json:
        print(header)
        if not running:  # the figures are history: no OK for a camera nobody is reading
            print(f"  last figures, written {_clock(snap['written_at'])} (start it: `sudo systemctl start alprd`)")
            lines = [(what, "-", text) for what, _, text in lines]
        for what, level, text in lines:
            print(f"  {what:<9}{level:<6}{text}")
    if not running:
        return EXIT_NOT_RUNNING
    return EXIT_PROBLEM if any(level != "OK" for _, level, _ in lines) else 0


def status_header(snap: dict[str, Any], now: datetime) -> tuple[str, bool]:
    """The first line, and whether the daemon is running (file fresh and not marked stopped)."""
    age = (now - parse_iso(snap["written_at"])).total_seconds()
    up = (now - parse_iso(snap["started_at"])).total_seconds()
    fresh = age <= STALE_AFTER_INTERVALS * snap.get("interval_s", 5) and snap.get("state") == "running"
    state = "running" if fresh else ("STOPPED" if snap.get("state") == "stopped" else "NOT RESPONDING")
    return (f"alprd {snap.get('version', '?')} on {snap['device_id']}: {state}, pid {snap['pid']}, "
            f"up {_duration(up)}, status {age:.0f} s old"), fresh


def status_lines(snap: dict[str, Any]) -> list[Line]:
    return [line(snap) for line in _LINES]


def _camera(s: dict) -> Line:
    p, cam = s.get("pipeline", {}), s.get("camera")
    if cam is None:  # a file or synthetic source: no reconnect wrapper
        return ("camera", "OK", f"{s['camera_id']}: {p.get('fps', 0)} fps processed")
    last = f", last frame {_clock(cam['last_frame_at'])}" if cam.get("last_frame_at") else ""
    if cam["state"] != "streaming":
        return ("camera", "FAIL", f"{cam['source']} LOST since {_clock(cam['lost_since'])}: {cam['last_error']}")
    return ("camera", "OK", f"{cam['source']} {cam['fps']} fps{last}, {cam['losses']} losses")


def _reads(s: dict) -> Line:
    p = s.get("pipeline", {})
    last = _clock(p["last_read_at"]) if p.get("last_read_at") else "none yet"
    return ("reads", "OK", (f"{p.get('reads', 0)} reads, last {last}; {p.get('frames_processed', 0)} frames, "
                           f"{p.get('frames_dropped', 0)} dropped, {p.get('inference_ms_avg', 0)} ms/frame"))


def _gps(s: dict) -> Line:
    g = s.get("gps")
    if g is None:
        return ("gps", "WARN", "not configured: reads carry no position")
    fix = g.get("fix")
    if g.get("mode") == "fixed":
        return ("gps", "OK", f"fixed site {fix['lat']:.6f}, {fix['lon']:.6f}")
    if not g.get("connected"):
        return ("gps", "FAIL", f"{g['port']} disconnected: {g.get('last_error')}")
    if fix is None:
        return ("gps", "WARN", f"no fix yet, {g.get('satellites') or 0} satellites")
    text = (f"{fix['lat']:.6f}, {fix['lon']:.6f} {fix['state']} ({fix['age_s']} s), "
            f"{fix.get('satellites')} sats, HDOP {fix.get('hdop')}, {fix.get('speed_kmh')} km/h")
    return ("gps", "OK" if fix["state"] == "current" else "WARN", text)


def _broker(s: dict) -> Line:
    u = s.get("uplink")
    if u is None:
        return ("broker", "WARN", "uplink disabled: reads stay in the local buffer")
    if u.get("connected"):
        return ("broker", "OK", f"connected to {u.get('broker')}, last upload {_clock(u.get('last_upload_at'))}")
    return ("broker", "WARN", f"not connected to {u.get('broker')}: {u.get('error') or 'connecting'}")


def _backlog(s: dict) -> Line:
    b = s.get("storage", {}).get("backlog", {})
    u = s.get("uplink", {})
    level = {"critical": "FAIL", "warning": "WARN"}.get(u.get("transfer"), "OK")
    oldest = f", oldest {b['oldest_age_h']:.1f} h" if b.get("oldest_age_h") is not None else ""
    return ("backlog", level, f"{b.get('reads', 0)} reads waiting for upload{oldest}")


def _hotlist(s: dict) -> Line:
    h = s.get("hotlist")
    if h is None:
        return ("hotlist", "WARN", "no hotlist matching in this daemon")
    return ("hotlist", "OK" if h.get("severity") == "ok" else "WARN", h.get("message", ""))


def _disk(s: dict) -> Line:
    d = s.get("storage", {}).get("disk", {})
    return ("disk", d.get("level", "WARN"), f"{d.get('free_mb')} MB free of {d.get('total_mb')} MB")


def _models(s: dict) -> Line:
    m = s.get("models", {})
    missing = [role for role, info in m.items() if not info.get("present")]
    text = "; ".join(f"{role} {Path(i['file']).name} {i.get('sha256', 'missing')} {i.get('modified', '')}".rstrip()
                     for role, i in m.items())
    return ("models", "FAIL" if missing else "OK", text)


_LINES: list[Callable[[dict], Line]] = [_camera, _reads, _gps, _broker, _backlog, _hotlist, _disk, _models]


def _clock(ts: str | None) -> str:
    return f"{ts[:10]} {ts[11:19]}Z" if ts else "never"


def _duration(seconds: float) -> str:
    m, _ = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m"
