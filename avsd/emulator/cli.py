"""``avsd emulator``: run the local AVS server until SIGINT/SIGTERM (the lead wires this into avsd/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from avsd.emulator.record import SERVICE_KEPT_RECORDS
from avsd.emulator.scenario import load_scenario
from avsd.emulator.server import Emulator, EmulatorSettings
from avsd.errors import ConfigError
from avsd.logredact import protect_root_handlers

_log = logging.getLogger(__name__)
_DEFAULTS = EmulatorSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=_DEFAULTS.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=_DEFAULTS.port, help="TCP port (default %(default)s)")
    parser.add_argument("--cert-dir", type=Path, default=None, help="where the self-signed cert is kept")
    parser.add_argument(
        "--refresh-token", default=None, help="LWA refresh token to accept (default: generated)"
    )
    parser.add_argument("--client-id", default=None, help="LWA client id to require (default: any)")
    parser.add_argument("--scenario", type=Path, default=None, help="scenario file (.toml or .json)")
    parser.add_argument("--reply-text", default=None, help="text of the default Speak reply")
    parser.add_argument("--record", type=Path, default=None, help="append one JSON line per request to FILE")
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=_DEFAULTS.access_token_lifetime_s,
        help="access token lifetime in seconds (default %(default)s)",
    )
    parser.add_argument("--no-stop-capture", action="store_true", help="never push StopCapture")
    parser.add_argument("--auto-approve", action="store_true", help="approve CBL code pairs at once")
    parser.add_argument("--accept-any-token", action="store_true", help="accept any bearer token")


async def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario) if args.scenario is not None else None
    except ConfigError as exc:
        _log.error("scenario: %s", exc)
        return 78
    emulator = Emulator(
        host=args.host,
        port=args.port,
        cert_dir=args.cert_dir,
        refresh_token=args.refresh_token,
        client_id=args.client_id,
        scenario=scenario,
        access_token_lifetime_s=args.token_lifetime,
        reply_text=args.reply_text,
        record_path=args.record,
        stop_capture=not args.no_stop_capture,
        auto_approve=args.auto_approve,
        accept_any_token=args.accept_any_token,
        kept_records=SERVICE_KEPT_RECORDS,  # ``--record FILE`` keeps every request
    )
    try:
        await emulator.start()
    except OSError as exc:
        _log.error("cannot listen on %s:%s: %s", args.host, args.port, exc.strerror)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # The refresh token is a credential of the emulator only (never a real Amazon one); the user needs it to
    # configure a client, so it goes to stdout, not to the log.
    sys.stdout.write(
        f"AVS emulator on {emulator.base_url}\n  CA file:       {emulator.ca_file}\n"
        f"  refresh token: {emulator.refresh_token}\n"
        f"  media example: {emulator.media.url('media:radio.pls')}\n"
    )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await emulator.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m avsd.emulator.cli``) until the lead wires ``avsd emulator``."""
    parser = argparse.ArgumentParser(prog="avsd emulator", description="local AVS server")
    add_arguments(parser)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO)
    protect_root_handlers()  # --debug must not print the clients' bearer tokens (hpack logs headers)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
