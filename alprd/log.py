"""Structured logging: JSON lines for journald, readable lines on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

from alprd.config import LoggingConfig


class _Stderr:
    """Whatever ``sys.stderr`` is at write time (it may be replaced after set-up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup_logging(cfg: LoggingConfig, stream=None) -> None:
    """Configure structlog once per process, from the config's logging section."""
    if stream is None:
        as_json = cfg.format == "json" or (cfg.format == "auto" and not sys.stderr.isatty())
        stream = _Stderr()
    else:
        as_json = cfg.format == "json" or (cfg.format == "auto" and not stream.isatty())
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, cfg.level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    return structlog.get_logger(name)
