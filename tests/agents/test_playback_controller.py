"""PlaybackController: a button press sends <Command>CommandIssued with the full context over HTTP/2; the cloud's
answer (a Play in the event response) starts the music."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsd.agents.playback_controller import Command, command_event
from avsd.emulator.scenario import DirectiveSpec, Rule
from tests.agents.media_server import MediaServer, play_payload, tone_mp3
from tests.agents.test_audio_player import content_wavs, wait_player_event
from tests.harness import running_device


@pytest.mark.parametrize("command", list(Command))
def test_command_event_shape(command: Command) -> None:
    event = command_event(command, [{"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {}}])
    doc = event.to_json_obj()
    assert doc["event"]["header"]["name"] == f"{command.value}CommandIssued"
    assert doc["event"]["payload"] == {} and "dialogRequestId" not in doc["event"]["header"]
    assert doc["context"][0]["header"]["name"] == "VolumeState"


async def test_next_button_sends_the_event_with_context_and_the_answer_plays(tmp_path: Path) -> None:
    server = MediaServer()
    url = server.add("/next.mp3", tone_mp3(0.5))
    with server.running():
        async with running_device(tmp_path) as device:
            device.emulator.add_rule(
                Rule(match="PlaybackController.NextCommandIssued",
                     directives=(DirectiveSpec("AudioPlayer", "Play", payload=play_payload("next", url)),))
            )
            device.daemon.playback_controller.next()
            record = await device.emulator.wait_for_event("PlaybackController.NextCommandIssued")
            await wait_player_event(device, "PlaybackFinished", "next")
            device.daemon.playback_controller.pause()
            pause = await device.emulator.wait_for_event("PlaybackController.PauseCommandIssued")
    context = {c["header"]["name"]: c["payload"] for c in record.event["context"]}
    assert set(context) >= {"PlaybackState", "VolumeState", "IndicatorState", "SpeechState", "RecognizerState"}
    assert context["PlaybackState"]["playerActivity"] == "IDLE"
    after = {c["header"]["name"]: c["payload"] for c in pause.event["context"]}
    assert after["PlaybackState"] == {"token": "next", "offsetInMilliseconds": after["PlaybackState"][
        "offsetInMilliseconds"], "playerActivity": "FINISHED"}
    assert len(content_wavs(device)) == 1
