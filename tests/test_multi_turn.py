"""Multi-turn dialogs end to end: Speak + ExpectSpeech reopens the microphone after the speech; the answer's
Recognize echoes the ExpectSpeech initiator verbatim; silence ends in ExpectSpeechTimedOut."""

from __future__ import annotations

import asyncio
from pathlib import Path

from avsd.audio.frames import SAMPLE_RATE
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.state import DialogState
from tests.harness import fixture_pcm, room_noise, running_device

S = DialogState
WAKE = "alexa-what-time-is-it"
INITIATOR = {"type": "EXPECT_SPEECH", "payload": {"token": "opaque-token-123"}}


def question_rule(timeout_ms: int) -> Rule:
    return Rule(
        match="SpeechRecognizer.Recognize",
        times=1,
        directives=(
            DirectiveSpec("SpeechSynthesizer", "Speak", speech="For how long?"),
            DirectiveSpec(
                "SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": timeout_ms, "initiator": INITIATOR}
            ),
        ),
    )


async def test_expect_speech_reopens_the_mic_after_the_speech_and_the_answer_carries_the_initiator(
    tmp_path: Path,
) -> None:
    async with running_device(tmp_path, stop_capture=False) as device:
        emulator = device.emulator
        emulator.add_rule(question_rule(8000))
        await device.source.feed(room_noise(1.0) + fixture_pcm(WAKE) + room_noise(1.5, seed=4))
        expecting = await device.wait_state(S.EXPECTING, timeout=15)
        # The question was spoken to the end (SpeechFinished is sent from the event queue, so it may still be on
        # its way when the mic reopens; the state order below shows the mic reopened only after the speech).
        await emulator.wait_for_event("SpeechSynthesizer.SpeechFinished", timeout=5)
        await device.source.feed(room_noise(0.3, seed=5) + fixture_pcm("no-wake-word") + room_noise(2.0, seed=6),
                                 realtime=True)
        second = await emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=10, count=2)
        await device.settle()
    first = next(r for r in emulator.records if r.qualified_name == "SpeechRecognizer.Recognize")
    assert first.event["event"]["payload"]["initiator"]["type"] == "WAKEWORD"
    payload = second.event["event"]["payload"]
    assert payload["initiator"] == INITIATOR
    first_id = first.event["event"]["header"]["dialogRequestId"]
    assert second.event["event"]["header"]["dialogRequestId"] != first_id
    states = device.states
    at = states.index(S.EXPECTING)
    # The speech ends first (the dialog passes through IDLE between SpeechFinished and ExpectSpeech), then the
    # mic reopens and the answer starts a new capture.
    assert S.SPEAKING in states[:at] and states[at + 1] is S.LISTENING, states
    assert expecting.previous in (S.SPEAKING, S.IDLE)
    assert len(second.audio) > SAMPLE_RATE  # the answer was uploaded
    assert "SpeechRecognizer.ExpectSpeechTimedOut" not in [r.qualified_name for r in emulator.records]


async def test_silence_after_expect_speech_sends_expect_speech_timed_out(tmp_path: Path) -> None:
    async with running_device(tmp_path, stop_capture=False) as device:
        emulator = device.emulator
        emulator.add_rule(question_rule(1000))
        feeding = asyncio.create_task(
            device.source.feed(room_noise(1.0) + fixture_pcm(WAKE) + room_noise(6.0, seed=7), realtime=True)
        )
        await device.wait_state(S.EXPECTING, timeout=15)
        await emulator.wait_for_event("SpeechRecognizer.ExpectSpeechTimedOut", timeout=5)
        idle = await device.wait_state(S.IDLE, after=device.states.index(S.EXPECTING))
        feeding.cancel()
        await device.settle()
    assert idle.previous is S.EXPECTING
    recognizes = [r for r in emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
    assert len(recognizes) == 1
    timed_out = next(r for r in emulator.records if r.qualified_name == "SpeechRecognizer.ExpectSpeechTimedOut")
    assert timed_out.event["event"]["payload"] == {}
