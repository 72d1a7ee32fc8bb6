"""Field diagnostics: ``alprd diag camera|gps|mqtt|models|storage|all``.

Each area runs real checks on this unit's hardware and configuration and
returns :class:`Check` lines: PASS, WARN or FAIL with the measured value and,
when something is wrong, the likely cause and the fix. Plain text, so that it
works over SSH; ``--json`` for scripts. Any FAIL makes the exit code non-zero.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from alprd.config import Config

Level = Literal["PASS", "WARN", "FAIL"]
AREAS = ("storage", "camera", "gps", "mqtt", "models")
_RANK = {"PASS": 0, "WARN": 1, "FAIL": 2}


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    level: Level
    value: str
    cause: str = ""
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class DiagOptions:
    """Knobs of a diagnostic run (command-line options; tests shorten them)."""

    seconds: float = 3.0  # how long camera and GPS are watched
    out_dir: Path | None = None  # where the camera snapshot goes (default: <state_dir>/diag)
    bench_frames: int = 20  # frames timed by the model benchmark
    timeout_s: float = 5.0  # MQTT connect and acknowledge
    reader: Any = None  # a PlateReader to use instead of loading the configured models


class Area:
    """Collects the checks of one area; ``ok``/``warn``/``fail`` add a line."""

    def __init__(self, name: str):
        self.name = name
        self.checks: list[Check] = []

    def ok(self, name: str, value: str) -> None:
        self.checks.append(Check(self.name, name, "PASS", value))

    def warn(self, name: str, value: str, cause: str, fix: str) -> None:
        self.checks.append(Check(self.name, name, "WARN", value, cause, fix))

    def fail(self, name: str, value: str, cause: str, fix: str) -> None:
        self.checks.append(Check(self.name, name, "FAIL", value, cause, fix))


def run(area: str, config: Config, options: DiagOptions | None = None) -> list[Check]:
    """Run one area's checks (its module is imported only when asked for)."""
    if area not in AREAS:
        raise ValueError(f"unknown diagnostic {area!r}: choose from {', '.join(AREAS)} or all")
    module = importlib.import_module(f"alprd.diag.{area}")
    return module.check(config, options or DiagOptions())


def worst(checks: list[Check]) -> Level:
    return max((c.level for c in checks), key=_RANK.__getitem__, default="PASS")


def format_checks(checks: list[Check]) -> str:
    """Aligned plain text, one line per check, cause and fix indented under problems."""
    lines = []
    for c in checks:
        lines.append(f"{c.level:<4}  {c.area:<7} {c.name:<12} {c.value}")
        if c.level != "PASS":
            lines.append(f"{'':<27}cause: {c.cause}")
            lines.append(f"{'':<27}fix:   {c.fix}")
    return "\n".join(lines)
