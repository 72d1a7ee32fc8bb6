"""The ``alprd`` command. Each command group lives in its own module here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from alprd import __version__
from alprd.cli import core, hardware, hotlist, keys, policy, uplink, users
from alprd.config import Config, ConfigError, load_config

# Each module has ``register(subparsers)``; its parsers set ``func(args, config) -> int``.
COMMAND_MODULES = [core, users, policy, keys, uplink, hotlist, hardware]

DEFAULT_CONFIG = "/etc/alprd/alprd.toml"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head -1` reports


def config_path(args: argparse.Namespace) -> str | None:
    """--config, else $ALPRD_CONFIG, else /etc/alprd/alprd.toml if present, else defaults."""
    if args.config:
        return args.config
    if os.environ.get("ALPRD_CONFIG"):
        return os.environ["ALPRD_CONFIG"]
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alprd", description="Automated licence plate reader daemon")
    parser.add_argument("--version", action="version", version=f"alprd {__version__}")
    parser.add_argument("-c", "--config", help=f"TOML config file (default $ALPRD_CONFIG or {DEFAULT_CONFIG})")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an unexpected error (also $ALPRD_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user sees a message, never a traceback (``--debug`` shows it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config: Config = load_config(config_path(args)) if getattr(args, "needs_config", True) else Config()
        code = int(args.func(args, config) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except ConfigError as err:
        print(f"alprd: configuration error:\n{err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `alprd ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return EXIT_BROKEN_PIPE
    except Exception as err:
        if args.debug or os.environ.get("ALPRD_DEBUG") == "1":
            raise
        print(f"alprd: unexpected error: {type(err).__name__}: {str(err)[:300]}\n"
              "  this is a bug: run again with --debug (or ALPRD_DEBUG=1) for the traceback, and report it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
