"""The real device pipeline (wake word, endpointer, HTTP/2 upload, agents) against the local AVS server with the
assistant brain: espeak-ng speech in, SetAlert out, and the timer rings on the device."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avsd.assistant.brain import AssistantBrain
from avsd.emulator.server import Emulator
from tests.fixtures import speechgen
from tests.harness import read_wav, running_device, with_noise

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


async def test_stop_by_voice_while_the_timer_rings(tmp_path: Path) -> None:
    """The ringing alert is in the Recognize's AlertsState context; "stop" deletes it (as Amazon does)."""
    brain = AssistantBrain()
    async with Emulator(cert_dir=tmp_path / "certs", brain=brain) as emu, running_device(
        tmp_path, emulator=emu
    ) as dev:
        await dev.source.feed(utterance("set a timer for five seconds"))
        started = await emu.wait_for_event("Alerts.AlertStarted", timeout=30)
        assert started.event is not None
        token = started.event["event"]["payload"]["token"]
        await dev.source.feed(utterance("stop"))
        deleted = await emu.wait_for_event("Alerts.DeleteAlertSucceeded", timeout=30)
        assert deleted.event is not None and deleted.event["event"]["payload"]["token"] == token
        await emu.wait_for_event("Alerts.AlertStopped", timeout=10)
    assert [t.intent for t in brain.turns] == ["SetTimer", "Stop"]


async def test_music_from_the_folder_plays_on_the_device(tmp_path: Path) -> None:
    """The device's real AudioPlayer fetches the file from the assistant's loopback HTTP server and plays it."""
    from avsd.assistant.settings import AssistantSettings
    from avsd.speech import convert
    from tests.assistant.test_music import tone_mp3

    music = tmp_path / "music"
    music.mkdir()
    (music / "Queen - Bohemian Rhapsody.mp3").write_bytes(tone_mp3(1.0))
    brain = AssistantBrain(AssistantSettings(music_dir=str(music)))
    await brain.start()
    try:
        async with Emulator(cert_dir=tmp_path / "certs", brain=brain) as emu, running_device(
            tmp_path, emulator=emu
        ) as dev:
            await dev.source.feed(utterance("play bohemian rhapsody"))
            finished = await emu.wait_for_event("AudioPlayer.PlaybackFinished", timeout=40)
            assert finished.event is not None
        played = [p for p in dev.replies() if "speech" not in p.name]
        assert played, sorted(p.name for p in dev.out_dir.iterdir())
        rate, pcm = read_wav(played[0])
        assert abs(len(pcm) / 2 / rate - 1.0) < 0.15  # the whole second of tone
        assert convert.decode_mp3((music / "Queen - Bohemian Rhapsody.mp3").read_bytes()).seconds > 0.9
    finally:
        await brain.stop()
