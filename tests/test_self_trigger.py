"""The device's own reply must not wake it; a user's real wake word over that reply must (barge-in).

End to end: the emulator answers with a Speak that says "Alexa"; while the daemon plays it (WAV sink at real-time
pace) the microphone hears its echo (-12 dB, band-limited, reverberant, as from a speaker across a room).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.state import DialogState
from tests.fixtures import speechgen
from tests.harness import fixture_pcm, room_noise, running_device

S = DialogState
REPLY = "Okay. Alexa. Can set timers and alarms for you, and play music."

pytestmark = pytest.mark.skipif(not speechgen.have_tools(), reason="espeak-ng and sox make the echo")


def echo_of_reply() -> np.ndarray:
    reply = speechgen.synth(REPLY, "en-us")
    return speechgen.sox_effect(reply, ["gain", "-12", "highpass", "250", "lowpass", "4000", "reverb", "50"])


async def speak_reply_and_hear(tmp_path: Path, heard: np.ndarray) -> tuple[list[str], list[str]]:
    """Wake the device, let it answer with REPLY, feed ``heard`` to the mic while it speaks; returns the names of
    the events the emulator received and the dialog states the device went through."""
    async with running_device(tmp_path, settings=[("playback.wav_realtime", True)], stop_capture=False) as device:
        device.emulator.add_rule(
            Rule(
                match="SpeechRecognizer.Recognize",
                times=1,
                directives=(DirectiveSpec("SpeechSynthesizer", "Speak", speech=REPLY),),
            )
        )
        await device.source.feed(room_noise(1.0) + fixture_pcm("alexa-what-time-is-it") + room_noise(1.0, seed=3))
        await device.wait_state(S.SPEAKING, timeout=15)
        await device.source.feed(heard.astype("<i2").tobytes() + room_noise(1.5, seed=4), realtime=True)
        await device.settle(timeout=30)
        return [r.qualified_name for r in device.emulator.records if r.qualified_name], list(map(str, device.states))


async def test_own_reply_does_not_wake_the_device(tmp_path: Path) -> None:
    names, states = await speak_reply_and_hear(tmp_path, echo_of_reply())
    assert names.count("SpeechRecognizer.Recognize") == 1, states
    assert states.count("listening") == 1
    assert names.count("SpeechSynthesizer.SpeechFinished") == 1  # the reply played to its end


async def test_user_wake_word_over_the_reply_barges_in(tmp_path: Path) -> None:
    echo = echo_of_reply().astype(np.int32)
    user = np.frombuffer(fixture_pcm("alexa-what-time-is-it"), dtype="<i2")
    at = len(echo) // 3
    mixed = np.zeros(max(len(echo), at + len(user)), dtype=np.int32)
    mixed[: len(echo)] += echo
    mixed[at : at + len(user)] += user
    heard = np.clip(mixed, -32768, 32767).astype(np.int16)
    names, states = await speak_reply_and_hear(tmp_path, heard)
    assert names.count("SpeechRecognizer.Recognize") == 2, states
    speaking = states.index("speaking")
    assert states[speaking + 1] == "listening", states  # barge-in straight from speaking


def test_echo_alone_would_wake_an_unguarded_engine() -> None:
    """Control: without the playback guard the echo does contain a wake word the model accepts."""
    from avsd.root import select_engine
    from avsd.wake.base import WakeSettings
    engine = select_engine(WakeSettings(during_playback="normal"))
    pcm = np.concatenate([np.zeros(8000, dtype=np.int16), echo_of_reply()]).astype("<i2").tobytes()
    hits = [engine.process(pcm[i : i + 320], (i + 320) // 2) for i in range(0, len(pcm) - 319, 320)]
    assert any(hit is not None for hit in hits)
