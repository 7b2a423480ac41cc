"""Command-line options of ``avsd vdevice`` and ``avsd test`` (no heavy imports: ``avsd --help`` stays fast and
works without the vdevice extra installed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from avsd.backends import Backend, add_backend_argument


def add_backend_arguments(parser: argparse.ArgumentParser, default: Backend) -> None:
    add_backend_argument(parser, default=default)  # the one --backend/--scenario definition (avsd/backends.py)
    parser.add_argument("--config", type=Path, default=None, help="TOML config (credentials for --backend avs, "
                        "[assistant] for --backend assistant)")


def add_vdevice_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_arguments(parser, Backend.EMULATOR)
    add_serve_arguments(parser)


def add_test_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE.yml|DIR", help="YAML suites or folders")
    add_backend_arguments(parser, Backend.EMULATOR)
    parser.add_argument("--base-url", default=None, help="use this Virtual Device server instead of a back-end")
    parser.add_argument("--token", default=None, help="user_id for --base-url (default: the suite's "
                        "virtualDeviceToken)")
    parser.add_argument("--junit", type=Path, default=None, help="write JUnit XML here")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to listen on (default vdevice.host: loopback)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default vdevice.port: 8734; 0 = any)")
    parser.add_argument("--tokens", type=Path, default=None,
                        help="tokens file: one token per line (default vdevice.tokens_file, else one generated)")
    parser.add_argument("--public-url", default=None, help="URL clients reach this server at (for audio links)")
    parser.add_argument("--state-dir", type=Path, default=None, help="conversations, audio (default: config's)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="server processes on the one port (default vdevice.workers: 1)")
