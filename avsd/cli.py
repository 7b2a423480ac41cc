"""``avsd`` command line. ``main(argv) -> exit code``; errors are one line, a traceback only with ``--debug``.

Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error (systemd's RestartPreventExitStatus).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from avsd import __version__
from avsd.errors import AvsdError, ConfigError, CredentialsError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 78

_LOGGER = logging.getLogger("avsd")


def setup_logging(level: str, *, debug: bool = False) -> None:
    """Journald without timestamps under systemd, else stderr. Only avsd's own loggers are configured."""
    from avsd.systemd import journal_handler

    handler = journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else (
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("avsd")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else getattr(logging, level.upper(), logging.INFO))
    root.propagate = False


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avsd", description="Headless Alexa Voice Service appliance daemon.")
    parser.add_argument("--version", action="version", version=f"avsd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (what the systemd service starts)")
    run.add_argument("--config", type=Path, default=None, help="TOML config file (default /etc/avsd/avsd.toml)")
    run.add_argument("--input", type=Path, default=None, help="read this WAV instead of the microphone")
    run.add_argument(
        "--hardware", choices=("auto", "mock", "none"), default="auto", help="GPIO: real pins, mock pins, or none"
    )
    _add_common(run)

    demo = sub.add_parser("demo", help="run the whole pipeline offline against the built-in emulator")
    demo.add_argument("--input", type=Path, default=None, help="a WAV to speak to the device (default: shipped)")
    demo.add_argument("--scenario", type=Path, default=None, help="emulator scenario (TOML or JSON)")
    demo.add_argument("--events-json", type=Path, default=None, help="write every event and directive as JSON lines")
    demo.add_argument("--out", type=Path, default=None, help="directory for the reply WAVs (default: a temp dir)")
    demo.add_argument("--fast", action="store_true", help="feed the WAV as fast as possible, not in real time")
    demo.add_argument("--engine", default=None, help="wake-word engine (default: the configured one)")
    demo.add_argument("--config", type=Path, default=None, help="TOML config for the device side")
    _add_common(demo)

    emulator = sub.add_parser("emulator", help="run the local AVS server (emulator)")
    from avsd.emulator.cli import add_arguments as add_emulator_arguments

    add_emulator_arguments(emulator)
    _add_common(emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except (ConfigError, CredentialsError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"avsd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AvsdError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"avsd: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "emulator":
        from avsd.emulator.cli import run as run_emulator

        setup_logging("info", debug=args.debug)
        return asyncio.run(run_emulator(args))
    if args.command == "demo":
        from avsd.demo import run_demo

        setup_logging("warning", debug=args.debug)
        return asyncio.run(run_demo(args))
    if args.command == "run":
        from avsd.config import DEFAULT_CONFIG_PATH, load_config
        from avsd.main import run_daemon

        path = args.config
        if path is None and DEFAULT_CONFIG_PATH.exists():
            path = DEFAULT_CONFIG_PATH
        config = load_config(path)
        setup_logging(config.daemon.log_level, debug=args.debug)
        return asyncio.run(run_daemon(config, args))
    raise AssertionError(args.command)  # pragma: no cover - argparse restricts the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
