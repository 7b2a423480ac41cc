"""The real device pipeline (wake word, endpointer, HTTP/2 upload, agents) against the local AVS server with the
assistant brain: espeak-ng speech in, SetAlert out, and the timer rings on the device."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avsd.assistant.brain import AssistantBrain
from avsd.emulator.server import Emulator
from tests.fixtures import speechgen
from tests.harness import running_device, with_noise

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not speechgen.have_tools(), reason="needs espeak-ng and sox (scripts/apt-packages.txt)"),
]


def utterance(command: str, *, wake: bool = True, voice: str = "en-us") -> bytes:
    pcm, _ = speechgen.build("t", wake=wake, command=command, voice=voice, speed=150)
    return with_noise(pcm.astype("<i2").tobytes(), level=60)


async def test_timer_is_set_by_voice_and_rings(tmp_path: Path) -> None:
    brain = AssistantBrain()
    async with Emulator(cert_dir=tmp_path / "certs", brain=brain) as emu, running_device(
        tmp_path, emulator=emu
    ) as dev:
        await dev.source.feed(utterance("set a timer for five seconds"))
        async with asyncio.timeout(30):
            while not any(d.header.name == "SetAlert" for d in dev.directives):
                await asyncio.sleep(0.05)
        set_alert = next(d for d in dev.directives if d.header.name == "SetAlert")
        assert set_alert.payload["type"] == "TIMER"
        speak = next(d for d in dev.directives if d.header.name == "Speak")
        assert speak.payload["caption"]["type"] == "WEBVTT", brain.turns
        print(brain.turns)
        assert "Timer set for 5 seconds." in speak.payload["caption"]["content"]
        assert brain.turns[-1].intent == "SetTimer"
        await emu.wait_for_event("Alerts.SetAlertSucceeded", timeout=10)
        started = await emu.wait_for_event("Alerts.AlertStarted", timeout=20)
        assert started.event is not None
        assert started.event["event"]["payload"]["token"] == set_alert.payload["token"]
