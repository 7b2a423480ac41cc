"""Voice-command endpointing: decide when the user has finished speaking. Pure: no I/O, no clock.

The caller classifies each chunk of audio as speech or not (normally :class:`avsd.audio.vad.WebRtcVad` on
10 ms frames) and passes the chunk's duration; stream time is the sum of those durations, so tests drive it
with plain numbers and the emulator can run it over an uploaded recording as fast as it likes.

Rules (times are stream time since :meth:`Endpointer.process` was first called):

* Speech "counts" once ``speech_start_s`` of speech has accumulated. Short VAD drop-outs inside a word do not
  reset that count; a silence gap of ``trailing_silence_s`` does (a cough, then a long pause, is not speech).
* After speech counted, ``trailing_silence_s`` of continuous silence ends the utterance (``END_OF_SPEECH``).
  One or two speech frames inside that silence (a click, a VAD blip) do not restart it: speech has to last
  ``_RESUME_SPEECH_US`` before the silence counter resets.
* No counted speech by ``no_speech_timeout_s`` -> ``NO_SPEECH_TIMEOUT``.
* ``max_duration_s`` of stream time -> ``MAX_DURATION`` (hard cap, whatever the VAD says).

A final result is sticky: later calls return it again. Time is accumulated in integer microseconds so that
thirty 0.01 s frames are exactly 0.3 s (float sums drift and would make thresholds flaky by one frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Speech inside the trailing silence must last this long to count as the user resuming.
_RESUME_SPEECH_US = 30_000
_US = 1_000_000


class EndpointResult(StrEnum):
    CONTINUE = "continue"
    END_OF_SPEECH = "end-of-speech"
    NO_SPEECH_TIMEOUT = "no-speech-timeout"
    MAX_DURATION = "max-duration"


@dataclass(frozen=True, slots=True)
class EndpointerSettings:
    """Tunables for deciding when a voice command ends."""

    speech_start_s: float = field(
        default=0.3,
        metadata={"help": "Minimum speech before the user counts as speaking", "min": 0.0, "max": 5.0},
    )
    trailing_silence_s: float = field(
        default=0.7,
        metadata={"help": "Silence after speech that ends the utterance", "min": 0.1, "max": 5.0},
    )
    no_speech_timeout_s: float = field(
        default=8.0,
        metadata={"help": "Give up when nobody starts speaking within this time", "min": 0.5, "max": 60.0},
    )
    max_duration_s: float = field(
        default=10.0,
        metadata={"help": "Hard cap on the length of one voice command", "min": 1.0, "max": 60.0},
    )
    aggressiveness: int = field(
        default=2,
        metadata={
            "help": "webrtcvad aggressiveness (0 = least, 3 = most filtering of non-speech)",
            "min": 0,
            "max": 3,
            "choices": (0, 1, 2, 3),
        },
    )

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0..3, not {self.aggressiveness}")
        for name in ("speech_start_s", "trailing_silence_s", "no_speech_timeout_s", "max_duration_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def _us(seconds: float) -> int:
    return round(seconds * _US)


class Endpointer:
    """Feed ``process(seconds, is_speech)`` per chunk until it returns something other than ``CONTINUE``."""

    def __init__(self, settings: EndpointerSettings | None = None) -> None:
        self.settings = settings or EndpointerSettings()
        self._start_us = _us(self.settings.speech_start_s)
        self._trailing_us = _us(self.settings.trailing_silence_s)
        self._no_speech_us = _us(self.settings.no_speech_timeout_s)
        self._max_us = _us(self.settings.max_duration_s)
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        self._now_us = 0
        self._speech_us = 0  # accumulated speech before it counts
        self._gap_us = 0  # current silence run before speech counted
        self._silence_us = 0  # current silence run after speech counted
        self._resume_us = 0  # speech run inside trailing silence, not yet confirmed
        self._first_speech_us: int | None = None
        self._speech_end_us: int | None = None
        self._result = EndpointResult.CONTINUE
        self.speech_detected = False

    @property
    def elapsed_s(self) -> float:
        """Stream time processed so far."""
        return self._now_us / _US

    @property
    def speech_end_s(self) -> float | None:
        """Stream time where the final (counted) speech ended; None while no speech has counted."""
        return None if self._speech_end_us is None else self._speech_end_us / _US

    @property
    def speech_began_s(self) -> float | None:
        """Stream time where the counted speech began (start of the run that reached ``speech_start_s``)."""
        return None if self._first_speech_us is None else self._first_speech_us / _US

    @property
    def result(self) -> EndpointResult:
        return self._result

    def process(self, seconds: float, is_speech: bool) -> EndpointResult:
        """Account for ``seconds`` of audio classified as ``is_speech``; return the decision so far."""
        if self._result is not EndpointResult.CONTINUE:
            return self._result
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        chunk_us = _us(seconds)
        chunk_start_us = self._now_us
        self._now_us += chunk_us
        if not self.speech_detected:
            self._before_speech(chunk_start_us, chunk_us, is_speech)
        else:
            self._after_speech(chunk_us, is_speech)
        if self._result is EndpointResult.CONTINUE:
            if not self.speech_detected and self._now_us >= self._no_speech_us:
                self._result = EndpointResult.NO_SPEECH_TIMEOUT
            elif self._now_us >= self._max_us:
                self._result = EndpointResult.MAX_DURATION
        return self._result

    def _before_speech(self, chunk_start_us: int, chunk_us: int, is_speech: bool) -> None:
        if is_speech:
            if self._speech_us == 0:
                self._first_speech_us = chunk_start_us
            self._speech_us += chunk_us
            self._gap_us = 0
            if self._speech_us >= self._start_us:
                self.speech_detected = True
                self._speech_end_us = self._now_us
            return
        self._gap_us += chunk_us
        if self._gap_us >= self._trailing_us:
            self._speech_us = 0
            self._first_speech_us = None

    def _after_speech(self, chunk_us: int, is_speech: bool) -> None:
        if is_speech:
            self._resume_us += chunk_us
            if self._silence_us == 0 or self._resume_us >= _RESUME_SPEECH_US:
                # Speech continues (or has resumed for long enough to be real): silence starts over.
                self._silence_us = 0
                self._speech_end_us = self._now_us
                return
            # A blip inside trailing silence: keep counting it as silence until it proves itself.
            self._silence_us += chunk_us
        else:
            self._resume_us = 0
            self._silence_us += chunk_us
        if self._silence_us >= self._trailing_us:
            self._result = EndpointResult.END_OF_SPEECH
