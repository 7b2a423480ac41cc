"""``avsd vdevice`` (serve Bespoken's Virtual Device API) and ``avsd test`` (run Bespoken YAML suites natively)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from avsd.avs.client import ConnectionSettings
from avsd.avs.credentials import Credentials
from avsd.backends import Backend, open_backend
from avsd.errors import ConfigError
from avsd.root import build_headless_session
from avsd.session import HeadlessSession
from avsd.vdevice.api import ApiSettings
from avsd.vdevice.clients import HttpVirtualDevice, LocalVirtualDevice
from avsd.vdevice.fetch import AudioFetcher
from avsd.vdevice.processor import Options
from avsd.vdevice.runner import find_suites, junit_xml, load_suite, run_suite, summary_line
from avsd.vdevice.service import (
    bind,
    default_speech,
    load_or_create_tokens,
    local_url,
    print_ready,
    serving,
    virtual_device_app,
    wait_for_signal,
)
from avsd.vdevice.sessions import SessionOpener
from avsd.vdevice.settings import homophones_of
from avsd.vdevice.suite import SuiteError
from avsd.vdevice.tokens import TokenBook, TokenEntry, identity_of


@contextlib.asynccontextmanager
async def backend_opener(args: argparse.Namespace, tokens: TokenBook | None) -> AsyncIterator[SessionOpener]:
    """``--backend`` -> a function that opens a headless session for a device identity."""
    from avsd.config import load_config

    config = load_config(args.config)
    backend = Backend(args.backend)
    if backend is not Backend.AVS:
        async with open_backend(backend, scenario_path=args.scenario, config=config) as local:
            refresh_token = local.refresh_token
            assert refresh_token is not None  # a local server always has one

            async def open_local(identity: str) -> HeadlessSession:
                # Every token is its own device identity to the local server.
                settings = ConnectionSettings(endpoint=local.endpoint, ca_file=local.ca_file)
                return build_headless_session(settings, credentials=Credentials(identity, refresh_token),
                                              token_url=local.endpoint + "/auth/o2/token")

            yield open_local
        return
    if args.scenario is not None:
        raise ConfigError("--scenario", "only applies to --backend emulator")
    by_identity: dict[str, Path] = {}
    for entry in _entries(tokens):
        by_identity[entry.identity] = entry.credentials or config.credentials_path
    if len(set(by_identity.values())) < len(by_identity):
        raise ConfigError("vdevice.tokens", "with --backend avs every token needs its own credentials file "
                          "(Amazon gives one refresh token per device): 'TOKEN /path/to/credentials.json'")

    async def open_avs(identity: str) -> HeadlessSession:
        path = by_identity.get(identity, config.credentials_path)
        return build_headless_session(config.avs, credentials_path=path, token_url=config.token_url())

    yield open_avs


def _entries(tokens: TokenBook | None) -> list[TokenEntry]:
    return list(tokens.entries) if tokens is not None else []


async def run_vdevice(args: argparse.Namespace) -> int:
    from avsd.config import load_config

    config = load_config(args.config)
    settings = config.vdevice
    state_dir = args.state_dir or config.state_dir
    tokens_file = args.tokens or (Path(settings.tokens_file) if settings.tokens_file else None)
    tokens, tokens_path = load_or_create_tokens(tokens_file, state_dir)
    sock = bind(args.host or settings.host, settings.port if args.port is None else args.port)
    url = args.public_url or settings.public_url or local_url(sock)
    common, per_token = homophones_of(settings)
    api = ApiSettings(homophones=common, token_homophones=per_token)
    fetcher = AudioFetcher(allow_private=settings.allow_private_audio_urls)
    speech = default_speech(stt_url=config.assistant.stt_url, stt_workers=settings.stt_workers)
    async with backend_opener(args, tokens) as opener, virtual_device_app(
        opener, speech, tokens, state_dir, url, settings=api, fetcher=fetcher
    ) as (app, _processor), serving(app, sock):
        print_ready(local_url(sock), tokens_path, args.backend)
        await wait_for_signal()
    return 0


async def run_tests(args: argparse.Namespace) -> int:
    suites = find_suites(args.paths)
    if not suites:
        raise ConfigError("paths", "no YAML suites found")
    loaded = []
    for path in suites:
        try:
            loaded.append(load_suite(path))
        except SuiteError as exc:
            raise ConfigError("suite", str(exc)) from exc
    outcomes = []
    if args.base_url:
        for suite, homophones in loaded:
            token = args.token or str(suite.configuration.get("virtualDeviceToken") or "")
            if not token:
                raise ConfigError("--token", "no token: give --token or virtualDeviceToken in testing.json")
            device = HttpVirtualDevice(args.base_url, token, voice_id=suite.configuration.get("voiceId"))
            sys.stdout.write(f"{suite.name}\n")
            outcomes += await run_suite(suite, homophones, device, out=sys.stdout)
    else:
        with tempfile.TemporaryDirectory(prefix="avsd-test-") as state:
            identity = identity_of("avsd-test-local-token")
            async with backend_opener(args, None) as opener, virtual_device_app(
                opener, default_speech(), TokenBook([TokenEntry("avsd-test-local-token", identity)]),
                Path(state), "http://127.0.0.1",
            ) as (_app, processor):
                for suite, homophones in loaded:
                    options = Options(voice_id=suite.configuration.get("voiceId"))
                    sys.stdout.write(f"{suite.name}\n")
                    outcomes += await run_suite(
                        suite, homophones, LocalVirtualDevice(processor, identity, options), out=sys.stdout
                    )
    line = summary_line(outcomes)
    sys.stdout.write(line + "\n")
    if args.junit is not None:
        args.junit.write_text(junit_xml(outcomes), encoding="utf-8")
    return 0 if all(o.passed or o.skipped for o in outcomes) else 1
