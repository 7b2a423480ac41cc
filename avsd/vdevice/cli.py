"""``avsd vdevice`` (serve Bespoken's Virtual Device API) and ``avsd test`` (run Bespoken YAML suites natively)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import TYPE_CHECKING

from avsd.avs.client import ConnectionSettings
from avsd.avs.credentials import Credentials
from avsd.backends import Backend, open_backend
from avsd.errors import AvsdError, ConfigError, CredentialsError
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
    prepare_state,
    print_ready,
    serving,
    virtual_device_app,
    wait_for_signal,
)
from avsd.vdevice.sessions import SessionOpener
from avsd.vdevice.settings import homophones_of
from avsd.vdevice.suite import SuiteError
from avsd.vdevice.tokens import TokenBook, TokenEntry, identity_of
from avsd.vdevice.workers import MAX_WORKERS, WorkerRole, supervise

if TYPE_CHECKING:
    from avsd.config import Config


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
    workers = settings.workers if args.workers is None else args.workers
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError("--workers", f"{workers}: expected 1..{MAX_WORKERS} server processes")
    state_dir = args.state_dir or config.state_dir
    tokens_file = args.tokens or (Path(settings.tokens_file) if settings.tokens_file else None)
    tokens, tokens_path = load_or_create_tokens(tokens_file, state_dir)
    sock = bind(args.host or settings.host, settings.port if args.port is None else args.port)
    url = args.public_url or settings.public_url or local_url(sock)
    backend = args.backend if workers == 1 else f"{args.backend}, {workers} worker processes"

    def ready() -> None:
        print_ready(local_url(sock), tokens_path, backend)

    prepare_state(state_dir)  # the directory, the store's schema and the URL key, before workers race for them
    if workers == 1:
        return await serve_vdevice(args, config, tokens, sock, url, None, ready)
    return await supervise(workers, serve_worker, (args, config, tokens, sock, url), ready)


async def serve_vdevice(
    args: argparse.Namespace,
    config: Config,
    tokens: TokenBook,
    sock: socket.socket,
    url: str,
    role: WorkerRole | None,
    on_ready: Callable[[], None],
) -> int:
    """One server process: all of ``avsd vdevice``, or one of its ``--workers``."""
    settings = config.vdevice
    common, per_token = homophones_of(settings)
    api = ApiSettings(
        homophones=common, token_homophones=per_token,
        resume_unfinished=role is None or role.resumes_conversations,
        worker_name="" if role is None else str(role.index),
    )
    fetcher = AudioFetcher(allow_private=settings.allow_private_audio_urls)
    # Cores shared between the server processes unless configured: N workers x M STT processes each.
    stt_workers = settings.stt_workers or max(1, (os.cpu_count() or 1) // (1 if role is None else role.count))
    speech = default_speech(stt_url=config.assistant.stt_url, stt_workers=stt_workers)
    state_dir = args.state_dir or config.state_dir
    async with backend_opener(args, tokens) as opener, virtual_device_app(
        opener, speech, tokens, state_dir, url, settings=api, fetcher=fetcher
    ) as (app, _processor), serving(app, sock):
        on_ready()
        await wait_for_signal()
    return 0


def serve_worker(
    role: WorkerRole,
    ready: Event,
    args: argparse.Namespace,
    config: Config,
    tokens: TokenBook,
    sock: socket.socket,
    url: str,
) -> None:
    """A spawned worker process of ``avsd vdevice --workers N``: exits with avsd's codes (78 = configuration)."""
    from avsd.cli import EXIT_CONFIG, EXIT_FAILURE, setup_logging
    from avsd.orphans import end_with_parent

    end_with_parent()  # a killed supervisor must not leave servers on its port
    setup_logging("info", debug=args.debug)
    try:
        code = asyncio.run(serve_vdevice(args, config, tokens, sock, url, role, ready.set))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group, before the loop's handler is set
        code = 0
    except (ConfigError, CredentialsError) as exc:
        print(f"avsd: {exc}", file=sys.stderr)
        code = EXIT_CONFIG
    except AvsdError as exc:
        print(f"avsd: {exc}", file=sys.stderr)
        code = EXIT_FAILURE
    sys.exit(code)


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
