"""The one typed, validated configuration object.

It is loaded once from a TOML file (``load_config``) and passed down; no module
reads configuration from globals. Every section forbids unknown keys so that a
typo is an error naming the key rather than a silently ignored setting.
Secrets may come from the environment: any string value written as
``"env:NAME"`` is replaced by the value of environment variable ``NAME``.
Errors never show a secret (a secret key, or any value from the environment),
nor more than a short prefix of a long value. Floats must be finite: ``inf``
would quietly switch a limit off, ``nan`` compares false with everything.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alprd.keys import AUDIT_SECRET_FILE, SIGNING_KEY_FILE

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MODELS_DIR = PACKAGE_DIR.parent / "models"


class ConfigError(ValueError):
    """A configuration problem, worded for the person who has to fix the file."""


# Keys whose values errors never show, nor any value read from the environment.
SECRET_KEYS = frozenset({"password", "sync_key"})
MAX_SHOWN = 60  # characters of a value or key an error shows


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


PLACEHOLDER_DEVICE_ID = "alprd-dev"  # the default: fine for a demo, never for a unit in service


class DeviceConfig(Section):
    """Who this unit is; the id goes into every read, status and upload."""

    id: str = Field(default=PLACEHOLDER_DEVICE_ID, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    agency: str = Field(default="", max_length=120)


class CameraConfig(Section):
    """Where frames come from. ``synthetic`` needs no hardware (demo, tests)."""

    id: str = Field(default="cam0", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    source: Literal["synthetic", "video", "images", "usb", "rtsp", "picamera"] = "synthetic"
    path: str = Field(default="", description="video file, image folder, /dev/videoN or rtsp:// URL")
    width: int = Field(default=1920, ge=64, le=8192)
    height: int = Field(default=1080, ge=64, le=8192)
    fps: float = Field(default=15.0, gt=0, le=240)
    loop: bool = False
    realtime: bool = Field(default=True, description="replay files at their own frame rate")
    frames: int = Field(default=0, ge=0, description="stop after this many frames (0 = no limit)")
    exposure_us: int = Field(default=0, ge=0, description="shutter time; 0 = automatic")
    roi: tuple[int, int, int, int] | None = Field(
        default=None, description="x, y, width, height of the region to analyse"
    )
    reopen_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    fourcc: str = Field(default="", pattern=r"^([A-Z0-9]{4})?$",
                        description="USB pixel format, e.g. MJPG (needed for 1080p at 15+ fps on USB 2)")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    read_timeout_s: float = Field(default=5.0, gt=0, le=120, description="no frame this long: camera lost")

    @field_validator("roi")
    @classmethod
    def _roi_has_area(cls, roi: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if roi is not None and (roi[0] < 0 or roi[1] < 0 or roi[2] < 16 or roi[3] < 16):
            raise ValueError("roi = [x, y, width, height] needs x, y >= 0 and width, height >= 16")
        return roi


class VisionConfig(Section):
    """The ONNX detector, verifier and OCR models and their thresholds.

    With a verifier (the default) the detector proposes boxes at ``candidate_threshold``
    and ``detect_threshold`` applies to the plate probability the verifier model fuses
    from both scores (its fitted ``fusion`` metadata, models/plate_verifier.md); with
    ``verifier_model = ""`` the detector runs alone and ``detect_threshold`` applies to its
    own score. ``detector_input`` is the longer side the frame is scaled to for the
    detector: 768 finds more of the small plates of a 1080p camera than the model's own
    640, at ~1.4x the detector's cost (models/plate_detector.md); 0 = the model's own.
    ``zoom_window`` adds a pass over the middle of the view at twice the scale, where a
    patrol car's distant plates are (25-40 px wide in 1080p), for one more detector run.
    """

    detector_model: Path = DEFAULT_MODELS_DIR / "plate_detector.onnx"
    verifier_model: Path | None = DEFAULT_MODELS_DIR / "plate_verifier.onnx"
    ocr_model: Path = DEFAULT_MODELS_DIR / "plate_ocr.onnx"
    threads: int = Field(default=1, ge=1, le=64)
    detector_input: int = Field(default=768, ge=0, le=4096, multiple_of=32)
    candidate_threshold: float = Field(default=0.1, gt=0, lt=1)
    detect_threshold: float = Field(default=0.4, gt=0, lt=1)
    # a candidate whose fused score reaches this is verified again from other views (alprd.vision.verifier); 1 = never
    verifier_second_look: float = Field(default=0.2, gt=0, le=1)
    ocr_min_confidence: float = Field(default=0.85, ge=0, le=1)  # scripts/calibrate_ocr.py
    # a one-line read less confident than this is read again from four other cuts of its crop and
    # the five fused (alprd.vision.ocr.second_views); 0 = never
    ocr_second_read: float = Field(default=0.98, ge=0, le=1)
    # a crop at least this many times as wide as high (a long European plate) is read at the wide
    # input width, 160 instead of 128 (alprd.vision.ocr.input_width); 0 = every crop at 128
    ocr_wide_aspect: float = Field(default=3.0, ge=0, le=20)
    # a crop whose text rows slope by at least this many degrees (a plate seen from the side) is
    # levelled before it is read (alprd.vision.skew); 0 = never
    ocr_level_degrees: float = Field(default=3.5, ge=0, le=20)
    min_plate_chars: int = Field(default=2, ge=1, le=10)
    # the plate syntaxes the reader expects, in order of preference (alprd.vision.formats.REGIONS)
    regions: list[Literal["us", "br", "eu"]] = Field(default_factory=lambda: ["us"], min_length=1, max_length=3)
    candidates: int = Field(default=5, ge=1, le=10, description="alternative texts kept per read")
    # a second detector pass over this window (x1, y1, x2, y2, fractions of the frame) for distant
    # plates (alprd.vision.zoom); [] = whole frame only
    zoom_window: list[float] = Field(default_factory=lambda: [0.25, 0.35, 0.75, 0.65])
    # the zoomed pass's input size (longer side), 0 = detector_input
    zoom_input: int = Field(default=0, ge=0, le=4096, multiple_of=32)

    @field_validator("zoom_window")
    @classmethod
    def _window_inside_frame(cls, value: list[float]) -> list[float]:
        if value and (len(value) != 4 or not (0 <= value[0] < value[2] <= 1 and 0 <= value[1] < value[3] <= 1)):
            raise ValueError("zoom_window = [x1, y1, x2, y2] needs 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 "
                             "(fractions of the frame), or [] for no zoomed pass")
        return value

    @field_validator("verifier_model", mode="before")
    @classmethod
    def _empty_means_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    def model_files(self) -> dict[str, Path]:
        """The model files in use, by role (what status and diagnostics list)."""
        files = {"detector": self.detector_model, "ocr": self.ocr_model}
        if self.verifier_model is not None:
            files["verifier"] = self.verifier_model
        return files


class PipelineConfig(Section):
    """Queues, de-duplication and shutdown behaviour of ``alprd run``."""

    frame_queue: int = Field(default=2, ge=1, le=64, description="frames waiting for inference")
    read_queue: int = Field(default=256, ge=1, le=100_000)
    track_gap_s: float = Field(default=1.0, gt=0, le=60, description="unseen this long: the pass is over")
    reread_window_s: float = Field(default=10.0, ge=0, le=3600)
    merge_max_edits: int = Field(default=1, ge=0, le=3)
    save_crops: bool = True
    crop_jpeg_quality: int = Field(default=85, ge=10, le=100)
    context_width: int = Field(default=480, ge=0, le=1920,
                               description="width of the vehicle picture kept with each read (0 = none)")


class StoreConfig(Section):
    """Where the data lives: an SQLite file in ``state_dir`` (a unit; a small department), or a
    PostgreSQL database (a department's server): ``database = "postgresql://alprd@dbhost/alprd"``,
    the password from PGPASSWORD or ~/.pgpass, never in this file. Key files stay in ``state_dir``."""

    state_dir: Path = Path("state")
    database: str = Field(default="alprd.db", min_length=1,
                          description="SQLite file name in state_dir, or a postgresql:// URL")
    audit_secret: str = Field(default=AUDIT_SECRET_FILE, min_length=1,
                              description="access-log secret (0600): inside state_dir, or an absolute path")
    signing_key: str = Field(default=SIGNING_KEY_FILE, min_length=1,
                             description="evidence signing key (0600): inside state_dir, or an absolute path")

    @property
    def url(self) -> str | None:
        """The PostgreSQL connection URL, when the data lives there."""
        return self.database if self.database.startswith(("postgresql://", "postgres://")) else None

    @property
    def path(self) -> Path:
        return self.state_dir / self.database

    @property
    def audit_secret_path(self) -> Path:
        return self.state_dir / self.audit_secret

    @property
    def signing_key_path(self) -> Path:
        return self.state_dir / self.signing_key


class GpsConfig(Section):
    """Position source: an NMEA receiver, a fixed pole site, or none."""

    mode: Literal["none", "serial", "fixed"] = "none"
    port: str = "/dev/ttyACM0"
    baudrate: int = Field(default=9600, ge=1200, le=921_600)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    max_fix_age_s: float = Field(default=5.0, gt=0, le=3600)
    reopen_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)


class StatusConfig(Section):
    """The health status file read by ``alprd status`` and the disk-space limits."""

    file: str = Field(default="status.json", min_length=1, description="inside store.state_dir")
    interval_s: float = Field(default=5.0, ge=0.5, le=300)
    disk_warn_mb: int = Field(default=2048, ge=0)
    disk_fail_mb: int = Field(default=256, ge=0)


class HotlistConfig(Section):
    """Hotlist matching, sync and alerting."""

    categories: tuple[str, ...] = (
        "stolen_vehicle", "stolen_plate", "wanted_person", "missing_person", "amber_alert",
        "bolo", "felony_vehicle",
    )
    denied_categories: tuple[str, ...] = ("traffic_misdemeanor", "parking")
    priorities: dict[str, int] = Field(
        default_factory=dict,
        description="the department's priority per category (1 = most urgent) for rows that carry none; "
                    "others get 5",
    )
    alert_repeat_window_s: float = Field(default=300.0, ge=0)
    stale_after_h: float = Field(default=24.0, gt=0)
    sync_key: str = Field(default="", description="HMAC-SHA256 key; use env:NAME")
    check_interval_s: float = Field(default=5.0, gt=0, le=3600, description="reload the list when changed")
    alert_kinds: tuple[Literal["exact", "confusable", "near", "partial", "candidate"], ...] = Field(
        default=("exact", "confusable", "near", "partial", "candidate"), min_length=1,
        description="match kinds that raise alerts; drop 'near' to cut false hits on very large lists",
    )

    @field_validator("categories", "denied_categories")
    @classmethod
    def _category_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise ValueError(f"category {clip(repr(name))}: use lower-case letters, digits "
                                 "and _ (e.g. stolen_vehicle)")
        return names

    @model_validator(mode="after")
    def _priorities_known(self) -> HotlistConfig:
        for name, priority in self.priorities.items():
            if name not in self.categories:
                raise ValueError(f"priorities: {clip(repr(name))} is not one of the categories "
                                 f"({', '.join(self.categories)})")
            if not 1 <= priority <= 9:
                raise ValueError(f"priorities: {name} = {priority} is outside 1..9 (1 = most urgent)")
        return self

    @field_validator("sync_key")
    @classmethod
    def _key_strength(cls, key: str) -> str:
        if key and len(key) < 16:
            raise ValueError("sync_key is too short: use at least 32 random characters "
                             "(e.g. `openssl rand -hex 32`)")
        return key


class UplinkConfig(Section):
    """MQTT broker, TLS and batching (see ``alprd.uplink``)."""

    enabled: bool = False
    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = Field(default="", description="use env:NAME to keep it out of the file")
    password: str = Field(default="", description="use env:NAME to keep it out of the file")
    ca_file: Path | None = Field(default=None, description="PEM CA bundle; setting it turns TLS on")
    cert_file: Path | None = Field(default=None, description="client certificate (PEM), needs ca_file")
    key_file: Path | None = Field(default=None, description="client private key (PEM), needs cert_file")
    topic_prefix: str = Field(default="alprd", min_length=1, pattern=r"^[^#+$][^#+]*$")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=1.0, gt=0, le=3600)
    reconnect_max_s: float = Field(default=120.0, gt=0, le=3600)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    batch_max_age_s: float = Field(default=30.0, gt=0)
    max_inflight_batches: int = Field(default=4, ge=1, le=100, description="batches sent, awaiting their receipt")
    receipt_timeout_s: float = Field(default=60.0, gt=0, le=3600,
                                     description="a batch without the receiver's receipt this long is sent again")
    heartbeat_s: float = Field(default=60.0, gt=0)
    backlog_warn_days: float = Field(default=25.0, gt=0)
    backlog_critical_days: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> UplinkConfig:
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("uplink.cert_file needs uplink.ca_file (TLS is switched on by ca_file)")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("uplink.key_file needs uplink.cert_file")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("uplink.reconnect_max_s must be >= uplink.reconnect_min_s")
        if self.backlog_critical_days <= self.backlog_warn_days:
            raise ValueError("uplink.backlog_critical_days must be greater than uplink.backlog_warn_days")
        return self


class PolicyConfig(Section):
    """Retention and access rules from the department policy."""

    retention_days: int = Field(default=30, ge=1, le=3650)
    purge_interval_h: float = Field(default=24.0, gt=0)
    session_minutes: int = Field(default=30, ge=1, le=24 * 60)
    max_failed_logins: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=24 * 60, description="locked this long after too many failures")
    min_password_chars: int = Field(default=10, ge=8, le=128)
    min_reason_chars: int = Field(default=15, ge=5, le=500, description="a written reason shorter than this is refused")


class ScreenConfig(Section):
    """The in-car screen: a local web application served by the daemon (see ``alprd.screen``)."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", min_length=1,
                      description="listen address; another one (with TLS) for a separate tablet")
    port: int = Field(default=8080, ge=0, le=65535, description="0 = any free port (tests)")
    tls_cert: Path | None = Field(default=None, description="PEM certificate; with tls_key, serves HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")
    timezone: str = Field(default="", description="IANA zone the screen shows times in; empty = the unit's")
    live_reads: int = Field(default=12, ge=1, le=200, description="reads shown on the live view")
    max_clients: int = Field(default=8, ge=1, le=100, description="live connections at once; more are refused")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if name:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"time zone {clip(repr(name))} is unknown: write an IANA name such as "
                                 "America/Chicago, or leave it empty for the unit's own") from None
        return name

    @model_validator(mode="after")
    def _tls_pair(self) -> ScreenConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("screen.tls_cert and screen.tls_key go together (set both for HTTPS, or neither)")
        if self.host not in ("127.0.0.1", "localhost", "::1") and self.tls_cert is None:
            raise ValueError(f"screen.host = {self.host!r} serves the screen beyond this computer: set "
                             "screen.tls_cert and screen.tls_key (passwords and plates must not cross a "
                             "network in clear text)")
        return self


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Config(Section):
    """The whole configuration. Every section has defaults that work."""

    device: DeviceConfig = DeviceConfig()
    camera: CameraConfig = CameraConfig()
    vision: VisionConfig = VisionConfig()
    pipeline: PipelineConfig = PipelineConfig()
    store: StoreConfig = StoreConfig()
    gps: GpsConfig = GpsConfig()
    status: StatusConfig = StatusConfig()
    hotlist: HotlistConfig = HotlistConfig()
    uplink: UplinkConfig = UplinkConfig()
    policy: PolicyConfig = PolicyConfig()
    screen: ScreenConfig = ScreenConfig()
    logging: LoggingConfig = LoggingConfig()

    @field_validator("gps")
    @classmethod
    def _fixed_needs_position(cls, gps: GpsConfig) -> GpsConfig:
        if gps.mode == "fixed" and (gps.latitude is None or gps.longitude is None):
            raise ValueError("gps.mode = 'fixed' needs gps.latitude and gps.longitude")
        return gps


def _resolve_env(value: Any, where: tuple[str, ...], resolved: set[tuple[str, ...]]) -> Any:
    """Replace ``"env:NAME"`` strings by the environment variable, recursively; note where."""
    if isinstance(value, dict):
        return {k: _resolve_env(v, (*where, k), resolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, where, resolved) for v in value]
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"{clip('.'.join(where))}: environment variable {clip(name)} is not set "
                              "(set it, or write the value)")
        resolved.add(where)
        return os.environ[name]
    return value


def service_problems(config: Config) -> list[str]:
    """Why ``config`` must not run as the daemon: reads it stores would be fake or unattributable.

    The defaults run a synthetic camera as ``alprd-dev`` (demo and tests); a unit in
    service must name itself and its camera.
    """
    problems = []
    if config.device.id == PLACEHOLDER_DEVICE_ID:
        problems.append(f"device.id = {PLACEHOLDER_DEVICE_ID!r} is the placeholder: set this unit's name, e.g. "
                        'id = "car12"')
    if config.camera.source == "synthetic":
        problems.append('camera.source = "synthetic" draws fake plates: set usb, rtsp, picamera, video or images, '
                        "and camera.path")
    return problems


def clip(text: str) -> str:
    """A long value cut to a prefix and its length: errors must not echo megabytes."""
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


def _shown(value: Any, secret: bool) -> str:
    if isinstance(value, dict):
        return ""
    return " = (secret, not shown)" if secret else f" = {clip(repr(value))}"


def _describe(err: ValidationError, resolved: set[tuple[str, ...]]) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        key = clip(".".join(loc)) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (check the spelling against config/alprd.example.toml)")
            continue
        secret = not SECRET_KEYS.isdisjoint(loc) or any(loc[:len(r)] == r for r in resolved)
        fix = " (inf and nan are not allowed: write a finite number)" if e["type"] == "finite_number" else ""
        lines.append(f"{key}{_shown(e.get('input'), secret)}: {e['msg']}{fix}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a plain dict (already parsed TOML) into a Config."""
    resolved: set[tuple[str, ...]] = set()
    try:
        return Config.model_validate(_resolve_env(data, (), resolved))
    except ValidationError as err:
        raise ConfigError(_describe(err, resolved)) from None


def load_config(path: str | Path | None) -> Config:
    """Load and validate the TOML file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file (copy config/alprd.example.toml and edit it)") from None
    except PermissionError:
        raise ConfigError(f"{p}: permission denied (run as the alprd user, or with sudo)") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a folder (give the path of the .toml file)") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot be read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p}: not UTF-8 text (byte {err.start}); save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: not valid TOML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{p}: not valid TOML: arrays or tables nested too deeply") from None
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{p}:\n{err}") from None

