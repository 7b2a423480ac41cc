"""``avsd phone`` (the bridge) and ``avsd phone-sim`` (a simulated Twilio / Vonage caller)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from avsd.backends import Backend, add_backend_argument
from avsd.errors import ConfigError

if TYPE_CHECKING:
    from avsd.config import Config
    from avsd.phone.backend import CallBackend


def add_phone_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="TOML config file ([phone] section)")
    add_backend_argument(parser, default=Backend.EMULATOR)  # the one --backend/--scenario (avsd/backends.py)
    parser.add_argument("--host", default=None, help="listen address (default phone.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default phone.port, 8088)")
    parser.add_argument("--public-url", default=None, help="public https:// origin (default phone.public_url)")


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", choices=("twilio", "vonage"))
    parser.add_argument("url", help="the bridge's base URL, e.g. http://127.0.0.1:8088")
    parser.add_argument("--input", type=Path, required=True, help="WAV the caller says")
    parser.add_argument("--out", type=Path, default=None, help="write what the caller hears to this WAV")
    parser.add_argument("--caller", default="+15550100", help="the caller's number")
    parser.add_argument("--public-url", default="", help="origin the bridge signs with (default: URL)")
    parser.add_argument("--dtmf", default="", help="digits to press once reply audio plays (# stops it)")
    parser.add_argument("--idle", type=float, default=2.0, help="hang up after this long without reply audio")


@contextlib.asynccontextmanager
async def call_backend_for(args: argparse.Namespace, config: Config, work: Path) -> AsyncIterator[CallBackend]:
    """``--backend`` started by :func:`avsd.backends.open_backend` (as for ``avsd ask``), the calls' sessions on it."""
    from avsd.backends import open_backend
    from avsd.phone.backend import call_backend

    backend = Backend(args.backend)
    if backend is Backend.AVS:
        from avsd.avs.credentials import load_credentials

        load_credentials(config.credentials_path)  # not linked yet: CredentialsError, exit 78, before listening
    # The local server never ends an upload itself: the bridge has endpointed the caller's speech already.
    async with open_backend(backend, scenario_path=args.scenario, cert_dir=work / "backend", config=config,
                            stop_capture=False) as where, call_backend(where, config) as calls:
        yield calls


async def run_phone(args: argparse.Namespace) -> int:
    from avsd.config import load_config
    from avsd.phone.bridge import PhoneBridge
    from avsd.phone.settings import PhoneSecrets, check_settings
    from avsd.web import WebServer

    config = load_config(args.config)
    settings = config.phone
    if args.host is not None:
        settings = dataclasses.replace(settings, host=args.host)
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise ConfigError("--port", "must be 0-65535")
        settings = dataclasses.replace(settings, port=args.port)
    if args.public_url is not None:
        settings = dataclasses.replace(settings, public_url=args.public_url)
    secrets = PhoneSecrets.resolve(settings)
    check_settings(settings, secrets)
    with tempfile.TemporaryDirectory(prefix="avsd-phone-") as work:
        async with call_backend_for(args, config, Path(work)) as backend:
            bridge = PhoneBridge(settings, backend, secrets)
            async with WebServer(bridge.app(), settings.host, settings.port) as server:
                public = settings.public_url or server.base_url
                print(f"avsd phone: listening on {server.base_url}; back-end {args.backend}", flush=True)
                if secrets.twilio_auth_token:
                    print(f"  Twilio: voice webhook POST {public}/twilio/voice", flush=True)
                if secrets.vonage_signature_secret or settings.vonage_unsigned:
                    print(f"  Vonage: answer URL {public}/vonage/answer, event URL {public}/vonage/event",
                          flush=True)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()
                for call in list(bridge.calls_by_id.values()):
                    await call.hang_up()
    return 0


async def run_sim(args: argparse.Namespace) -> int:
    from avsd.audio.wav_source import load_wav
    from avsd.phone.sim import simulate

    pcm = load_wav(args.input)
    result = await simulate(
        args.provider, args.url, pcm, caller=args.caller, public_url=args.public_url,
        twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN", ""),
        vonage_secret=os.environ.get("VONAGE_SIGNATURE_SECRET", ""), dtmf=args.dtmf, idle_s=args.idle,
    )
    for at, what in sorted(result.timeline):
        print(f"{at:7.2f} s  {what}")
    seconds = len(result.received) / 2 / result.rate
    latencies = result.latencies()
    summary = f"avsd phone-sim: heard {seconds:.2f} s of reply audio in {len(result.media_times)} messages"
    if latencies:
        summary += "; end of speech -> first reply audio " + ", ".join(f"{x * 1000:.0f} ms" for x in latencies)
    print(summary)
    if args.out is not None:
        with wave.open(str(args.out), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(result.rate)
            out.writeframes(bytes(result.received))
        print(f"avsd phone-sim: reply audio in {args.out}")
    if result.closed_by_bridge and not result.media_times:
        print(f"avsd phone-sim: the bridge closed the call ({result.close_code})", file=sys.stderr)
        return 1
    return 0
