"""A running emulator and an AvsClient connected to it over real TLS + HTTP/2 on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from avsd.avs.attachments import AttachmentStore
from avsd.avs.auth import TokenProvider
from avsd.avs.client import AvsClient, ConnectionSettings, ConnectionState, make_ssl_context
from avsd.avs.context import ContextRegistry
from avsd.avs.credentials import Credentials, save_credentials
from avsd.avs.http import HttpClient
from avsd.avs.messages import Directive, context_entry
from avsd.emulator.server import Emulator

# Fast reconnects for tests; the production table is tested in test_auth.py.
FAST_BACKOFF = (0.05, 0.1, 0.2)


@dataclass
class Device:
    emulator: Emulator
    client: AvsClient
    tokens: TokenProvider
    directives: list[Directive] = field(default_factory=list)
    states: list[ConnectionState] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def directive(self, qualified_name: str, timeout: float = 5.0) -> Directive:
        async with asyncio.timeout(timeout):
            while True:
                for directive in self.directives:
                    if directive.qualified_name == qualified_name:
                        return directive
                await asyncio.sleep(0.01)

    async def connected_times(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.client.connect_count < count or self.client.state is not ConnectionState.CONNECTED:
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def connected_device(
    tmp_path: Path,
    emulator: Emulator,
    settings: ConnectionSettings | None = None,
    *,
    start: bool = True,
    token_url: str | None = None,
    refresh_token: str | None = None,
) -> AsyncIterator[Device]:
    credentials = tmp_path / "credentials.json"
    save_credentials(credentials, Credentials("avsd-test", refresh_token or emulator.refresh_token))
    ssl_context = make_ssl_context(str(emulator.ca_file))
    http = HttpClient(ssl_context=ssl_context)
    tokens = TokenProvider(
        token_url=token_url or emulator.base_url + "/auth/o2/token", credentials_path=credentials, http=http
    )
    context = ContextRegistry()
    context.register(lambda: context_entry("SpeechRecognizer", "RecognizerState", {"wakeword": "ALEXA"}))
    directives: list[Directive] = []
    base = settings or ConnectionSettings()
    client = AvsClient(
        replace(base, endpoint=emulator.base_url, backoff_s=FAST_BACKOFF),
        tokens,
        context=context,
        on_directive=directives.append,
        attachments=AttachmentStore(),
        ssl_context=ssl_context,
    )
    device = Device(emulator, client, tokens, directives)
    client.add_state_observer(device.states.append)
    if start:
        device.task = asyncio.create_task(client.run(), name="client-under-test")
        await client.wait_connected(10)
    try:
        yield device
    finally:
        if device.task is not None:
            device.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await device.task
        await http.aclose()


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(cert_dir=tmp_path / "certs") as emu:
        yield emu
