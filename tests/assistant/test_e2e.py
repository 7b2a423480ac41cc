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
        assert "Timer set for 5 seconds." in speak.payload["caption"]["content"]
        assert brain.turns[-1].intent == "SetTimer"
        await emu.wait_for_event("Alerts.SetAlertSucceeded", timeout=10)
        started = await emu.wait_for_event("Alerts.AlertStarted", timeout=20)
        assert started.event is not None
        assert started.event["event"]["payload"]["token"] == set_alert.payload["token"]


async def test_missing_duration_is_asked_back_with_expect_speech(tmp_path: Path) -> None:
    from avsd.state import DialogState as S
    from tests.harness import room_noise

    brain = AssistantBrain()
    async with Emulator(cert_dir=tmp_path / "certs", brain=brain) as emu, running_device(
        tmp_path, emulator=emu
    ) as dev:
        await dev.source.feed(utterance("set a timer"))
        await dev.wait_state(S.EXPECTING, timeout=30)
        speak = next(d for d in dev.directives if d.header.name == "Speak")
        assert speak.payload["caption"]["content"].endswith("For how long?")
        await dev.source.feed(room_noise(0.3, seed=5) + utterance("twenty seconds", wake=False))
        async with asyncio.timeout(30):
            while not any(d.header.name == "SetAlert" for d in dev.directives):
                await asyncio.sleep(0.05)
        second = await emu.wait_for_event("SpeechRecognizer.Recognize", count=2, timeout=5)
    assert second.event is not None
    assert second.event["event"]["payload"]["initiator"]["type"] == "AVSD_ASSISTANT"  # echoed by the device
    assert [t.intent for t in brain.turns] == ["SetTimer", "Answer"]
    assert brain.turns[-1].reply == "Timer set for 20 seconds."


async def test_unknown_speech_and_silence_get_a_spoken_answer_not_a_hang(tmp_path: Path) -> None:
    brain = AssistantBrain()
    async with Emulator(cert_dir=tmp_path / "certs", brain=brain) as emu, running_device(
        tmp_path, emulator=emu
    ) as dev:
        await dev.source.feed(utterance("who is the president of france"))
        async with asyncio.timeout(30):
            while not any(d.header.name == "Speak" for d in dev.directives):
                await asyncio.sleep(0.05)
        await dev.settle(30)
    speak = next(d for d in dev.directives if d.header.name == "Speak")
    assert speak.payload["caption"]["content"].rsplit("\n", 1)[-1].startswith("Sorry"), brain.turns
