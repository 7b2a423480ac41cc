"""Voice activity detection with WebRTC's VAD (package ``webrtcvad-wheels``, module ``webrtcvad``).

:class:`WebRtcVad` classifies one 10 ms frame. :class:`VadEndpointer` glues it to the pure
:class:`~avsd.audio.endpointer.Endpointer` for callers that hold raw audio in arbitrary chunks (the emulator
reading a Recognize upload, the daemon reading the microphone).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from avsd.audio.endpointer import Endpointer, EndpointerSettings, EndpointResult
from avsd.audio.frames import FRAME_BYTES, FRAME_SECONDS, SAMPLE_RATE
from avsd.errors import AudioDeviceError

_LOGGER = logging.getLogger(__name__)


class WebRtcVad:
    """One webrtcvad instance (16 kHz unless told: webrtcvad also takes 8, 32 and 48 kHz, e.g. a phone line).
    ``aggressiveness`` 0..3: higher filters more non-speech."""

    def __init__(self, aggressiveness: int = 2, rate: int = SAMPLE_RATE) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0..3, not {aggressiveness}")
        try:
            import webrtcvad
        except ImportError as exc:  # translated once, here
            raise AudioDeviceError("webrtcvad is not installed: pip install webrtcvad-wheels") from exc
        if rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtcvad takes 8, 16, 32 or 48 kHz, not {rate}")
        self.aggressiveness = aggressiveness
        self.rate = rate
        self.frame_bytes = FRAME_BYTES * rate // SAMPLE_RATE
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        """Classify one 10 ms frame (320 bytes of 16 kHz S16_LE mono; 160 at 8 kHz)."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"expected a {self.frame_bytes}-byte frame, got {len(frame)} bytes")
        return bool(self._vad.is_speech(frame, self.rate))


def frame_level_db(frame: bytes) -> float:
    """RMS level of one frame in dB relative to one LSB (digital silence -> 0)."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    power = float(np.dot(samples, samples)) / max(len(samples), 1)
    return 10.0 * math.log10(power + 1.0)


class NoiseGate:
    """Tracks the noise floor and says whether a frame stands clearly above it.

    webrtcvad keeps saying "speech" for 50-70 ms after a word ends (its internal hang-over); gating it with
    the frame level puts the end of speech where the voice actually stops, so trailing silence is counted from
    there. The floor follows quiet frames at once and drifts up slowly, so speech never becomes the floor.
    """

    def __init__(self, margin_db: float = 9.0, rise_per_frame: float = 0.002) -> None:
        self.margin_db = margin_db
        self.rise_per_frame = rise_per_frame
        self.floor_db: float | None = None

    def above_floor(self, frame: bytes) -> bool:
        level = frame_level_db(frame)
        floor = self.floor_db
        if floor is None or level < floor:
            floor = level
        else:
            floor += (level - floor) * self.rise_per_frame
        self.floor_db = floor
        return level > floor + self.margin_db


class VadEndpointer:
    """Endpointing over raw audio: ``process_audio(chunk)`` accepts any number of bytes.

    A frame counts as speech when webrtcvad says so and its level stands above the noise floor (NoiseGate).
    Bytes that do not fill a whole 10 ms frame are kept for the next call. Once a final result is reached,
    further audio is ignored and the result is returned again.
    """

    def __init__(self, settings: EndpointerSettings | None = None) -> None:
        self.settings = settings or EndpointerSettings()
        self.vad = WebRtcVad(self.settings.aggressiveness)
        self.gate = NoiseGate()
        self.endpointer = Endpointer(self.settings)
        self._tail = b""

    @property
    def speech_detected(self) -> bool:
        return self.endpointer.speech_detected

    @property
    def speech_end_s(self) -> float | None:
        return self.endpointer.speech_end_s

    def reset(self) -> None:
        self.endpointer.reset()
        self.gate = NoiseGate()
        self._tail = b""

    def process_frame(self, frame: bytes) -> EndpointResult:
        """Classify and account for one 320-byte frame."""
        loud = self.gate.above_floor(frame)  # always, so the floor keeps tracking
        return self.endpointer.process(FRAME_SECONDS, loud and self.vad.is_speech(frame))

    def process_audio(self, chunk: bytes) -> EndpointResult:
        """Feed any amount of audio; return the decision after the last whole frame."""
        data = self._tail + chunk if self._tail else chunk
        result = self.endpointer.result
        offset = 0
        while result is EndpointResult.CONTINUE and offset + FRAME_BYTES <= len(data):
            result = self.process_frame(data[offset : offset + FRAME_BYTES])
            offset += FRAME_BYTES
        if result is EndpointResult.CONTINUE:
            self._tail = data[offset:]
        else:
            self._tail = b""
            _LOGGER.debug("endpoint %s at %.2f s", result, self.endpointer.elapsed_s)
        return result
