"""Pure cores of a telephone call: utterance segmentation and the call's state table. No I/O, no clock.

Segmentation follows the seed (Vonage's AudioSocket framework): webrtcvad decides per 10 ms frame; an utterance
starts at the first voiced frame, ends after ``silence_s`` without speech, is dropped when it held less than
``min_speech_s`` of speech, and is cut at ``max_s``. Time arrives as frame durations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class SegmenterSettings:
    silence_s: float = field(default=0.4, metadata={"help": "silence that ends a caller's utterance", "min": 0.05})
    min_speech_s: float = field(
        default=0.2, metadata={"help": "an utterance with less speech than this is dropped", "min": 0.0}
    )
    max_s: float = field(default=10.0, metadata={"help": "an utterance is cut at this length", "min": 0.5})
    preroll_s: float = field(
        default=0.2, metadata={"help": "audio kept from before the first voiced frame", "min": 0.0, "max": 1.0}
    )
    aggressiveness: int = field(default=2, metadata={"help": "webrtcvad mode 0-3", "choices": (0, 1, 2, 3)})


class SegmentEvent(StrEnum):
    NONE = "none"
    STARTED = "started"  # first voiced frame: the utterance's audio starts (pre-roll included)
    CONFIRMED = "confirmed"  # min_speech_s of speech so far: a real utterance (barge-in acts on this)
    ENDED = "ended"  # silence_s of silence after enough speech: hand the utterance on
    CAPPED = "capped"  # max_s reached: hand it on
    DROPPED = "dropped"  # silence_s of silence after too little speech: forget it


class Segmenter:
    """``process(seconds, is_speech) -> SegmentEvent`` for consecutive frames."""

    def __init__(self, settings: SegmenterSettings) -> None:
        self.settings = settings
        self.active = False
        self._length_s = 0.0
        self._speech_s = 0.0
        self._silence_s = 0.0
        self._confirmed = False
        self.trailing_silence_s = 0.0  # of the last utterance that ended: how long endpointing waited

    def reset(self) -> None:
        self.active = False
        self._length_s = self._speech_s = self._silence_s = 0.0
        self._confirmed = False

    def process(self, seconds: float, is_speech: bool) -> SegmentEvent:
        s = self.settings
        if not self.active:
            if not is_speech:
                return SegmentEvent.NONE
            self.reset()
            self.active = True
            self._length_s = self._speech_s = seconds
            return self._confirm() or SegmentEvent.STARTED
        self._length_s += seconds
        if is_speech:
            self._speech_s += seconds
            self._silence_s = 0.0
        else:
            self._silence_s += seconds
        if self._length_s >= s.max_s - 1e-9:
            self.trailing_silence_s = self._silence_s
            self.active = False
            return SegmentEvent.CAPPED if self._speech_s >= s.min_speech_s - 1e-9 else SegmentEvent.DROPPED
        if self._silence_s >= s.silence_s - 1e-9:
            self.trailing_silence_s = self._silence_s
            self.active = False
            return SegmentEvent.ENDED if self._speech_s >= s.min_speech_s - 1e-9 else SegmentEvent.DROPPED
        return self._confirm() or SegmentEvent.NONE

    def _confirm(self) -> SegmentEvent | None:
        if not self._confirmed and self._speech_s >= self.settings.min_speech_s - 1e-9:
            self._confirmed = True
            return SegmentEvent.CONFIRMED
        return None


class CallState(StrEnum):
    LISTENING = "listening"  # waiting for the caller's next utterance
    THINKING = "thinking"  # an utterance is with the back-end
    SPEAKING = "speaking"  # a reply is going out to the caller
    ENDED = "ended"


class CallTrigger(StrEnum):
    UTTERANCE = "utterance"  # an utterance ended and goes to the back-end
    REPLY = "reply"  # the back-end answered with audio
    NO_REPLY = "no_reply"  # the back-end answered without audio (or failed)
    PLAYED = "played"  # the reply's last frame went out (and, on Twilio, its mark came back)
    BARGE_IN = "barge_in"  # the caller spoke over the reply (confirmed speech)
    STOP = "stop"  # DTMF '#' or the host program stopped the reply
    PLAY = "play"  # the host program plays audio to the caller
    HANG_UP = "hang_up"


_S, _T = CallState, CallTrigger
TRANSITIONS: dict[tuple[CallState, CallTrigger], CallState] = {
    (_S.LISTENING, _T.UTTERANCE): _S.THINKING,
    (_S.LISTENING, _T.PLAY): _S.SPEAKING,
    (_S.THINKING, _T.REPLY): _S.SPEAKING,
    (_S.THINKING, _T.NO_REPLY): _S.LISTENING,
    (_S.THINKING, _T.PLAY): _S.SPEAKING,
    (_S.SPEAKING, _T.PLAYED): _S.LISTENING,
    (_S.SPEAKING, _T.BARGE_IN): _S.LISTENING,
    (_S.SPEAKING, _T.STOP): _S.LISTENING,
    (_S.SPEAKING, _T.PLAY): _S.SPEAKING,
}


def next_state(state: CallState, trigger: CallTrigger) -> CallState | None:
    """The state after ``trigger``, or None when the trigger means nothing in ``state`` (it is ignored)."""
    if trigger is CallTrigger.HANG_UP:
        return CallState.ENDED
    if state is CallState.ENDED:
        return None
    return TRANSITIONS.get((state, trigger))

