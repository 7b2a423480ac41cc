"""The voice pipeline end to end: real speech -> real wake word + endpointer -> HTTP/2 upload to the emulator ->
Speak -> WAV sink. Positions are checked against the fixtures' known sample indices (tests/fixtures/speech.json).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import miniaudio
import pytest

from avsd.audio.frames import SAMPLE_RATE
from avsd.avs.messages import Directive
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.state import DialogState
from tests.harness import SPEECH, Device, fixture_pcm, read_wav, room_noise, running_device, with_noise

S = DialogState
MS = SAMPLE_RATE // 1000  # samples per millisecond
WAKE = "alexa-what-time-is-it"


def _speak_content_ids(device: Device) -> list[str]:
    """The cid of every Speak the device was sent (from the events log of the emulator's answers)."""
    return [
        directive.payload["url"].removeprefix("cid:")
        for directive in device.directives
        if directive.qualified_name == "SpeechSynthesizer.Speak"
    ]


def _offset_in(stream: bytes, needle: bytes) -> int:
    """Sample offset of ``needle`` (the start of what the server received) inside what the device was fed."""
    position = stream.find(needle)
    assert position >= 0 and position % 2 == 0, "uploaded audio is not a slice of the input"
    return position // 2


async def test_wake_word_dialog_uploads_preroll_indices_whole_command_and_plays_the_reply(tmp_path: Path) -> None:
    info = SPEECH[WAKE]
    speech = with_noise(fixture_pcm(WAKE))
    lead_in = room_noise(2.0)  # room noise before the fixture, so the ring buffer has history
    # The emulator's own endpointing is off so the device's local endpointing decides where the upload ends.
    async with running_device(tmp_path, stop_capture=False) as device:
        fed = lead_in + speech + room_noise(3.0, seed=3)
        await device.source.feed(fed)
        record = await device.emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=10)
        await asyncio.wait_for(record.body_complete.wait(), 10)
        await device.settle()

        audio = bytes(record.audio)
        start = _offset_in(fed, audio[:640])
        alexa_start = len(lead_in) // 2 + info["alexa_start"]
        alexa_end = len(lead_in) // 2 + info["alexa_end"]
        command_end = len(lead_in) // 2 + info["command_end"]
        end = start + len(audio) // 2

        # 500 ms (+-20 ms) of pre-roll before the wake word.
        assert abs((alexa_start - start) - 500 * MS) <= 20 * MS, (alexa_start - start) / MS
        payload = record.event["event"]["payload"]
        assert payload["profile"] == "NEAR_FIELD" and payload["format"] == "AUDIO_L16_RATE_16000_CHANNELS_1"
        assert payload["initiator"]["type"] == "WAKEWORD"
        indices = payload["initiator"]["payload"]["wakeWordIndices"]
        assert indices["startIndexInSamples"] == 8000
        assert abs(start + indices["startIndexInSamples"] - alexa_start) <= 20 * MS
        assert abs(start + indices["endIndexInSamples"] - alexa_end) <= 250 * MS
        # The whole command, ending within trailing silence (700 ms) + 50 ms of the end of speech.
        assert end >= command_end
        assert end - command_end <= (700 + 50) * MS, (end - command_end) / MS
        assert audio == fed[start * 2 : end * 2]

        states = device.states
        assert states[:4] == [S.LISTENING, S.THINKING, S.SPEAKING, S.IDLE], states
        replies = device.replies()
        assert len(replies) == 1
        rate, pcm = read_wav(replies[0])
        # The whole reply reached the sink: as long as the MP3 the device received decodes to.
        speak = next(r for r in device.emulator.records if r.qualified_name == "SpeechRecognizer.Recognize")
        assert speak.status == 200
        mp3 = b"".join(
            [await a.read_all() for a in [device.daemon.attachments.get(cid) for cid in _speak_content_ids(device)]]
        )
        decoded = miniaudio.decode(mp3, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1)
        expected_s = decoded.num_frames / decoded.sample_rate
        assert expected_s > 1.0
        # miniaudio's streaming decoder (used by the WAV sink) drops the last MP3 frame (1152 samples, 52 ms at
        # 22.05 kHz) that its whole-buffer decoder keeps: allow one frame. The VLC backend plays it all.
        assert -0.06 <= len(pcm) / 2 / rate - expected_s <= 0.01, (len(pcm) / 2 / rate, expected_s)
        names = [r.qualified_name for r in device.emulator.records if r.qualified_name]
        assert names.index("SpeechSynthesizer.SpeechStarted") < names.index("SpeechSynthesizer.SpeechFinished")


async def test_stop_capture_mid_utterance_ends_the_upload(tmp_path: Path) -> None:
    async with running_device(tmp_path, stop_capture=False) as device:
        # Hold local endpointing off for the command by talking for a long time: the fixture twice in a row.
        speech = fixture_pcm(WAKE)
        long_command = speech + fixture_pcm("no-wake-word")
        feeding = asyncio.create_task(device.source.feed(bytes(SAMPLE_RATE * 2) + long_command, realtime=True))
        record = await device.emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=10)
        await asyncio.sleep(0.5)
        await device.emulator.push_directive(Directive.new("SpeechRecognizer", "StopCapture"))
        await asyncio.wait_for(record.body_complete.wait(), 5)
        received_at_stop = len(record.audio)
        await feeding
        await device.settle()
    assert device.states[:2] == [S.LISTENING, S.THINKING]
    # The upload ended long before the speech did.
    assert received_at_stop < len(long_command) - SAMPLE_RATE * 2


async def test_silence_after_the_wake_word_returns_to_idle_after_the_no_speech_timeout(tmp_path: Path) -> None:
    settings = [("endpointing.no_speech_timeout_s", 1.5)]
    async with running_device(tmp_path, settings=settings, stop_capture=False) as device:
        await device.source.feed(bytes(SAMPLE_RATE) + fixture_pcm("alexa") + bytes(SAMPLE_RATE * 3))
        listening = await device.wait_state(S.LISTENING)
        idle = await device.wait_state(S.IDLE, after=1)
        await device.settle()
    assert listening.trigger == "wake_word"
    assert idle.trigger == "no_speech"
    assert S.THINKING not in device.states and S.SPEAKING not in device.states
    assert not device.replies(), "a late answer to an abandoned dialog must not be played"


async def test_barge_in_stops_the_speech_and_starts_a_new_dialog(tmp_path: Path) -> None:
    long_reply = " ".join(["This is a very long answer that goes on and on."] * 6)
    async with running_device(tmp_path, settings=[("playback.wav_realtime", True)], stop_capture=False) as device:
        device.emulator.add_rule(
            Rule(
                match="SpeechRecognizer.Recognize",
                times=1,
                directives=(DirectiveSpec("SpeechSynthesizer", "Speak", speech=long_reply),),
            )
        )
        await device.source.feed(bytes(SAMPLE_RATE) + fixture_pcm(WAKE) + bytes(SAMPLE_RATE))
        await device.wait_state(S.SPEAKING)
        await device.source.feed(fixture_pcm(WAKE) + bytes(SAMPLE_RATE * 2), realtime=True)
        await device.wait_state(S.LISTENING, after=3)
        await device.settle(timeout=30)
        recognizes = [r for r in device.emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
    assert len(recognizes) == 2
    first, second = (r.event["event"]["header"]["dialogRequestId"] for r in recognizes)
    assert first != second
    states = device.states
    speaking = states.index(S.SPEAKING)
    assert states[speaking + 1] is S.LISTENING, states
    names = [r.qualified_name for r in device.emulator.records if r.qualified_name]
    # The interrupted speech is not reported as finished (SpeechSynthesizer 1.0, as the SDK does).
    assert names.count("SpeechSynthesizer.SpeechStarted") == 2
    assert names.count("SpeechSynthesizer.SpeechFinished") == 1


async def test_wake_word_is_ignored_while_offline_and_works_after_reconnect(tmp_path: Path) -> None:
    async with running_device(tmp_path, stop_capture=False) as device:
        from avsd.emulator.faults import Fault, FaultKind

        device.emulator.inject(Fault(FaultKind.EXPIRE_TOKENS))
        device.emulator.inject(Fault(FaultKind.CLOSE_DOWNCHANNEL))
        await device.wait_state(S.OFFLINE)
        await device.daemon.client.wait_connected(10)
        await device.source.feed(bytes(SAMPLE_RATE) + fixture_pcm(WAKE) + bytes(SAMPLE_RATE * 2))
        await device.emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=10)
        await device.settle()
    assert S.OFFLINE in device.states and S.SPEAKING in device.states


@pytest.mark.parametrize("initiator", ["tap", "hold"])
async def test_button_dialogs(tmp_path: Path, initiator: str) -> None:
    async with running_device(tmp_path, stop_capture=False) as device:
        await device.source.feed_silence(0.5)
        await device.source.drained()
        if initiator == "tap":
            device.daemon.dialog.tap()
        else:
            device.daemon.dialog.hold_start()
        await device.source.feed(fixture_pcm("no-wake-word"))
        await device.source.drained()
        if initiator == "hold":
            device.daemon.dialog.hold_end()
        else:
            await device.source.feed_silence(1.5)
        record = await device.emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=10)
        await device.settle()
    payload = record.event["event"]["payload"]
    expected = {"tap": ("TAP", "NEAR_FIELD"), "hold": ("PRESS_AND_HOLD", "CLOSE_TALK")}[initiator]
    assert (payload["initiator"]["type"], payload["profile"]) == expected
    assert "wakeWordIndices" not in payload["initiator"]["payload"]
    assert device.states[:3] == [S.LISTENING, S.THINKING, S.SPEAKING]
