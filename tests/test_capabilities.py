"""Capabilities API: the body built from what is registered, the PUT to the emulator, publish-once-per-change."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from avsd.agents.capabilities import (
    CAPABILITIES_PATH,
    CapabilitiesPublisher,
    CapabilitiesSettings,
    capabilities_body,
    capabilities_url,
    interfaces_from_context,
)
from avsd.avs.messages import context_entry
from avsd.emulator.server import Emulator
from avsd.errors import AvsConnectionError, AvsServerError
from tests.harness import running_device

FAST = CapabilitiesSettings(retry_initial_s=0.01, retry_max_s=0.02)


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        ([], ["System"]),
        (["SpeechRecognizer", "SpeechSynthesizer"], ["SpeechRecognizer", "SpeechSynthesizer", "System"]),
        (["AudioPlayer", "Speaker"], ["AudioPlayer", "Speaker", "PlaybackController", "System"]),
        (["Alerts", "Alerts"], ["Alerts", "System"]),
    ],
)
def test_interfaces_come_from_the_context_entries(namespaces: list[str], expected: list[str]) -> None:
    entries = [context_entry(ns, "State", {}) for ns in namespaces]
    assert interfaces_from_context(entries) == expected


def test_body_is_canonical_and_declares_alerts_configuration() -> None:
    settings = CapabilitiesSettings(maximum_alerts=7)
    body = capabilities_body(["System", "Alerts", "SpeechRecognizer", "Unknown"], settings)
    assert body == capabilities_body(["SpeechRecognizer", "Alerts", "System"], settings)
    doc = json.loads(body)
    assert doc["envelopeVersion"] == "20160207"
    caps = {c["interface"]: c for c in doc["capabilities"]}
    assert set(caps) == {"Alerts", "SpeechRecognizer", "System"}  # unknown interfaces are not declared
    assert caps["SpeechRecognizer"] == {"type": "AlexaInterface", "interface": "SpeechRecognizer", "version": "2.0"}
    assert caps["Alerts"]["configurations"] == {"maximumAlerts": {"overall": 7, "alarms": 7, "timers": 7}}


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://alexa.na.gateway.devices.a2z.com", "https://api.amazonalexa.com" + CAPABILITIES_PATH),
        ("https://alexa.eu.gateway.devices.a2z.com", "https://api.eu.amazonalexa.com" + CAPABILITIES_PATH),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443" + CAPABILITIES_PATH),
    ],
)
def test_capabilities_url(base: str, url: str) -> None:
    assert capabilities_url(base) == url


class ScriptedPut:
    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, bytes]] = []

    async def __call__(self, url: str, body: bytes) -> None:
        self.calls.append((url, body))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


async def test_publisher_retries_transient_failures_and_remembers_success(tmp_path: Path) -> None:
    put = ScriptedPut(AvsConnectionError("down"), AvsServerError(500, "INTERNAL_SERVICE_EXCEPTION"), None)
    publisher = CapabilitiesPublisher(put=put, state_dir=tmp_path, settings=FAST, rng=random.Random(1))
    async with asyncio.timeout(5):
        assert await publisher.publish("https://x/c", b"{}") is True
        assert len(put.calls) == 3
        # Same URL and body: nothing sent; a changed body or URL: sent again.
        assert await publisher.publish("https://x/c", b"{}") is False
        assert await publisher.publish("https://x/c", b'{"a":1}') is True
        assert await publisher.publish("https://y/c", b'{"a":1}') is True
    assert len(put.calls) == 5
    assert publisher.last_published() == {"url": "https://y/c", "body": '{"a":1}'}


async def test_publisher_gives_up_on_400_without_remembering(tmp_path: Path) -> None:
    put = ScriptedPut(AvsServerError(400, "CAPABILITIES", "bad"))
    publisher = CapabilitiesPublisher(put=put, state_dir=tmp_path, settings=FAST)
    async with asyncio.timeout(5):
        assert await publisher.publish("https://x/c", b"{}") is False
    assert len(put.calls) == 1 and publisher.last_published() is None


async def _capability_puts(emulator: Emulator, count: int) -> list[bytes]:
    async with asyncio.timeout(10):
        while len(puts := [r for r in emulator.records if r.path == CAPABILITIES_PATH and r.status]) < count:
            await asyncio.sleep(0.02)
    return [r.body for r in puts]


async def test_daemon_publishes_on_first_start_only_and_again_when_the_set_changes(tmp_path: Path) -> None:
    async with Emulator(cert_dir=tmp_path / "certs") as emulator:
        async with running_device(tmp_path, emulator=emulator) as device:
            (body,) = await _capability_puts(emulator, 1)
            put = next(r for r in emulator.records if r.path == CAPABILITIES_PATH)
            assert put.method == "PUT" and put.status == 204
            assert put.headers.get("content-type") == "application/json"
            doc = json.loads(body)
            interfaces = {c["interface"] for c in doc["capabilities"]}
            # Every interface whose context the device reports, plus System.
            registered = {c["header"]["namespace"] for c in device.daemon.context.gather()}
            assert interfaces == registered | {"System"} | ({"PlaybackController"} & interfaces)
            assert {"SpeechRecognizer", "SpeechSynthesizer", "Alerts", "System"} <= interfaces
            state_file = tmp_path / "state" / "capabilities.json"
            async with asyncio.timeout(5):  # written once the 204 has been read, just after the server recorded it
                while not state_file.exists():
                    await asyncio.sleep(0.02)
            assert json.loads(state_file.read_text())["body"] == body.decode()

        # Restart with the same state dir: unchanged, so no second PUT.
        async with running_device(tmp_path, emulator=emulator) as device:
            await asyncio.wait_for(device.daemon.capabilities_checked.wait(), 10)
            assert len([r for r in emulator.records if r.path == CAPABILITIES_PATH]) == 1

        # A different set was published before (e.g. an older avsd): published again.
        state_file.write_text(json.dumps({"url": emulator.base_url + CAPABILITIES_PATH, "body": "{}"}))
        async with running_device(tmp_path, emulator=emulator):
            bodies = await _capability_puts(emulator, 2)
    assert bodies[1] == body
