"""``--say``: when each utterance is spoken (pure SayCue table), the wake word, the speech itself."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from avsd.demo_say import Action, Cue, SayCue, split_wake_word, utterance_pcm
from avsd.state import DialogState as S
from avsd.state import Trigger as T


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alexa, set a timer", (True, "set a timer")),
        ("alexa what time is it?", (True, "what time is it?")),
        ("five minutes", (False, "five minutes")),
        ("Alexander the great", (False, "Alexander the great")),
        ("  Alexa!  ", (True, "")),
    ],
)
def test_split_wake_word(text: str, expected: tuple[bool, str]) -> None:
    assert split_wake_word(text) == expected


def test_voice_dialogs_then_an_expect_speech_answer() -> None:
    cue = SayCue(3, tap=False)
    assert cue.start() == Cue(Action.SPEAK, 0, wake_word=True)
    assert cue.on_transition(S.IDLE, S.LISTENING, T.WAKE_WORD) is None
    assert cue.on_transition(S.LISTENING, S.THINKING, T.CAPTURE_DONE) is None
    # The Speak ends in IDLE and an ExpectSpeech opens the mic right after: the IDLE only asks to wait.
    waiting = cue.on_transition(S.SPEAKING, S.IDLE, T.SPEECH_FINISHED)
    assert waiting == Cue(Action.WAIT_IDLE, 1, wake_word=True)
    assert cue.on_transition(S.IDLE, S.EXPECTING, T.EXPECT_SPEECH) == Cue(Action.SPEAK, 1, wake_word=False)
    assert cue.idle_settled(S.LISTENING) is None  # the wait is over: the answer took utterance 1
    # This dialog ends for good: utterance 2 opens a new one with the wake word, once the device stays idle.
    assert cue.on_transition(S.SPEAKING, S.IDLE, T.SPEECH_FINISHED) == Cue(Action.WAIT_IDLE, 2, wake_word=True)
    assert cue.idle_settled(S.IDLE) == Cue(Action.SPEAK, 2, wake_word=True)
    assert cue.done
    assert cue.on_transition(S.SPEAKING, S.IDLE, T.SPEECH_FINISHED) is None
    assert cue.idle_settled(S.IDLE) is None


def test_tap_waits_for_listening_and_offline_is_not_a_turn() -> None:
    cue = SayCue(2, tap=True)
    assert cue.start() == Cue(Action.TAP_AND_SPEAK, 0, wake_word=False)
    assert not cue.done
    assert cue.on_transition(S.IDLE, S.EXPECTING, T.EXPECT_SPEECH) is None  # still waiting for the tap
    assert cue.on_transition(S.IDLE, S.LISTENING, T.BUTTON_TAP) == Cue(Action.SPEAK, 0, wake_word=False)
    assert cue.on_transition(S.OFFLINE, S.IDLE, T.CONNECTED) is None  # a reconnect is not the dialog's end
    assert cue.on_transition(S.SPEAKING, S.IDLE, T.SPEECH_FINISHED) == Cue(Action.WAIT_IDLE, 1, wake_word=True)
    assert cue.idle_settled(S.IDLE) == Cue(Action.TAP_AND_SPEAK, 1, wake_word=False)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_utterance_has_the_wake_word_in_front_only_when_asked() -> None:
    with_wake = np.frombuffer(utterance_pcm("five minutes", wake_word=True), dtype="<i2")
    plain = np.frombuffer(utterance_pcm("five minutes", wake_word=False), dtype="<i2")
    assert len(with_wake) > len(plain) + 0.25 * 16000  # "Alexa" and the gap after it
    assert np.array_equal(with_wake[-len(plain):], plain)
    assert 0.6 * 32767 < np.max(np.abs(plain)) <= 0.71 * 32767  # normalised to -3 dBFS
