"""The bridge over real loopback HTTP/websockets, answered by the real emulator over HTTP/2 + TLS: started by
``avsd.backends.open_backend`` and asked through headless sessions, as ``avsd phone`` does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from avsd.audio.wav_source import load_wav
from avsd.backends import Backend, open_backend
from avsd.config import Config
from avsd.emulator.server import Emulator
from avsd.phone.backend import call_backend
from avsd.phone.bridge import PhoneBridge
from avsd.phone.settings import PhoneSecrets, PhoneSettings
from avsd.web import WebServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"
TWILIO_TOKEN = "test-twilio-auth-token"
VONAGE_SECRET = "test-vonage-signature-secret-0123456789"


@dataclass
class Running:
    bridge: PhoneBridge
    server: WebServer
    emulator: Emulator | None

    @property
    def url(self) -> str:
        return self.server.base_url


@contextlib.asynccontextmanager
async def running_bridge(
    tmp_path: Path, *, backend: bool = True, settings: PhoneSettings | None = None, scenario: Path | None = None
) -> AsyncIterator[Running]:
    settings = settings or PhoneSettings(port=0)
    secrets = PhoneSecrets(TWILIO_TOKEN, VONAGE_SECRET)
    if not backend:
        bridge = PhoneBridge(settings, None, secrets)
        async with WebServer(bridge.app(), settings.host, 0) as server:
            yield Running(bridge, server, None)
        return
    async with open_backend(Backend.EMULATOR, scenario_path=scenario, cert_dir=tmp_path / "certs",
                            stop_capture=False) as where, call_backend(where, Config()) as be:
        assert be.per_call  # the local server: a session (connection) per call
        bridge = PhoneBridge(settings, be, secrets)
        async with WebServer(bridge.app(), settings.host, 0) as server:
            yield Running(bridge, server, where.emulator)


@pytest.fixture(scope="session")
def speech() -> bytes:
    """ "Alexa, what time is it?" (espeak-ng), 16 kHz, with its silences trimmed to 0.5 s either side."""
    pcm = load_wav(FIXTURES / "alexa-what-time-is-it.wav")
    return pcm
