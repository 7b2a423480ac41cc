"""The bridge over real loopback HTTP/websockets, answered by the real emulator over HTTP/2 + TLS."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from avsd.audio.wav_source import load_wav
from avsd.avs.client import ConnectionSettings
from avsd.avs.credentials import Credentials, save_credentials
from avsd.emulator.scenario import load_scenario
from avsd.emulator.server import Emulator
from avsd.phone.backend import AvsBackend
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
    loaded = load_scenario(scenario) if scenario is not None else None
    async with Emulator(cert_dir=tmp_path / "certs", stop_capture=False, scenario=loaded) as emulator:
        credentials = tmp_path / "credentials.json"
        save_credentials(credentials, Credentials("avsd-phone-test", emulator.refresh_token))
        avs = dataclasses.replace(ConnectionSettings(), endpoint=emulator.base_url, ca_file=str(emulator.ca_file))
        async with AvsBackend(avs, token_url=emulator.base_url + "/auth/o2/token", credentials_path=credentials,
                              per_call=True) as be:
            bridge = PhoneBridge(settings, be, secrets)
            async with WebServer(bridge.app(), settings.host, 0) as server:
                yield Running(bridge, server, emulator)


@pytest.fixture(scope="session")
def speech() -> bytes:
    """ "Alexa, what time is it?" (espeak-ng), 16 kHz, with its silences trimmed to 0.5 s either side."""
    pcm = load_wav(FIXTURES / "alexa-what-time-is-it.wav")
    return pcm
