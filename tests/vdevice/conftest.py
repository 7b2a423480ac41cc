"""The virtual device as a user runs it: the local AVS server, headless sessions over real HTTP/2 + TLS, the
shared speech package (espeak-ng, pocketsphinx), the aiohttp API on loopback — and Bespoken's real npm clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from avsd.avs.client import ConnectionSettings
from avsd.avs.credentials import Credentials
from avsd.emulator.server import Emulator
from avsd.root import build_headless_session
from avsd.session import HeadlessSession
from avsd.vdevice.fetch import AudioFetcher
from avsd.vdevice.service import bind, default_speech, local_url, serving, virtual_device_app
from avsd.vdevice.tokens import TokenBook

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
TOKEN = "test-token-0123456789abcdef"
OTHER_TOKEN = "other-token-0123456789abcdef"
# The local server's answer in these tests. pocketsphinx's free-text model hears espeak-ng's "a v s d emulator"
# as "obviously you really": the default reply is not a sentence an STT engine can be asked to get right.
REPLY = "Welcome to the quiz. How many players are there?"


@dataclass
class RunningDevice:
    url: str
    token: str
    emulator: Emulator
    state_dir: Path


@contextlib.asynccontextmanager
async def running_vdevice(emulator: Emulator, state_dir: Path, **kwargs: Any) -> AsyncIterator[str]:
    async def open_session(identity: str) -> HeadlessSession:
        settings = ConnectionSettings(endpoint=emulator.base_url, ca_file=str(emulator.ca_file))
        return build_headless_session(
            settings, credentials=Credentials(identity, emulator.refresh_token),
            token_url=emulator.base_url + "/auth/o2/token",
        )

    tokens_file = state_dir / "tokens"
    tokens_file.write_text(f"# test tokens\n{TOKEN}\n{OTHER_TOKEN}  # a second device\n")
    sock = bind("127.0.0.1", 0)
    url = local_url(sock)
    # One STT worker process: each loads and warms up a decoder (~3 s of CPU); test_stt_processes.py covers two.
    async with virtual_device_app(
        open_session, default_speech(stt_workers=1), TokenBook.from_file(tokens_file), state_dir, url,
        fetcher=kwargs.pop("fetcher", AudioFetcher(allow_private=True)), **kwargs,
    ) as (app, _processor), serving(app, sock):
        yield url


@pytest.fixture
async def vdevice(tmp_path: Path) -> AsyncIterator[RunningDevice]:
    async with (
        Emulator(cert_dir=tmp_path / "certs", reply_text=REPLY) as emulator,
        running_vdevice(emulator, tmp_path) as url,
    ):
        yield RunningDevice(url, TOKEN, emulator, tmp_path)


def node_available() -> bool:
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "virtual-device-sdk").is_dir()


needs_node = pytest.mark.skipif(
    not node_available(), reason="Bespoken's npm clients not installed (scripts/dev.sh test runs npm ci in tests/node)"
)


async def sdk(base_url: str, command: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Run Bespoken's virtual-device-sdk (tests/node/sdk-client.js) against ``base_url``; its JSON verdict."""
    env = {**os.environ, "VIRTUAL_DEVICE_BASE_URL": base_url}
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "sdk-client.js"), json.dumps(command), cwd=NODE_DIR, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()
    line = out.decode().strip().splitlines()[-1]
    verdict: dict[str, Any] = json.loads(line)
    return verdict
