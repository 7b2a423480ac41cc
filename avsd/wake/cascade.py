"""The default wake stage, ``cascade``: microWakeWord always on, openWakeWord whenever there is speech energy.

Why two models: on real people openWakeWord is the one that hears "Alexa" (microWakeWord missed 3 of 7 real
speakers), on espeak-ng voices it is the other way round; either one firing wakes the device, and so do both
agreeing at lower thresholds (:mod:`avsd.wake.scored`, measured in bench/bench_wake.py). Why the gate:
openWakeWord costs ~30x microWakeWord (its mel + embedding front end), and a quiet room should cost what
microWakeWord costs. So openWakeWord only runs while :class:`SpeechGate` sees frames clearly above the noise floor,
and it is fed from a ring buffer: when the gate opens, the model first gets up to ``PREROLL_S`` of the audio it
has not seen (the word's onset and the quiet before it, which the model needs as context), then live frames.
The model is never reset by the gate: the gate closes only after ``HOLD_S`` of quiet, so what the model saw last
before closing and the start of the pre-roll are both quiet, and its sliding windows join without a seam.
For the same reason the model runs ungated for its first ``WARMUP_S`` (after start or reset), so its windows
hold room audio rather than the zeros it starts with.
"""

from __future__ import annotations

from collections.abc import Sequence

from avsd.audio.frames import FRAME_SECONDS, SAMPLE_RATE
from avsd.audio.ring import RingBuffer
from avsd.wake.scored import Scorer

PREROLL_S = 1.0  # audio from before the gate opened that the gated model gets first
HOLD_S = 1.0  # the gate stays open this long after the last speech frame (openWakeWord fires after the word)
# After start or reset the model runs ungated this long: its windows start out as digital zeros (pyopen-wakeword
# autofills 8 s of them), and a jump from zeros to a pre-roll of room noise plus speech made it fire on
# non-wake speech (measured: 0.65 on a sentence that scores 0.0001 ungated).
WARMUP_S = 2.5
# Noise floor of the gate: falls quickly to quieter frames, rises slowly (1 dB/s) so speech does not become the
# floor but a new room noise is absorbed.
_FLOOR_FALL = 0.3
_FLOOR_RISE_DB = 0.01
# Digital silence (a stream that starts with zeros, a muted input) says nothing about the room: were it to pull the
# floor down to 0 dB, the first room noise after it would hold the gate open for ~30 s (the floor rises 1 dB/s).
_DIGITAL_SILENCE_DB = 3.0  # pre-emphasised frame level; a real microphone's self-noise is far above it


class SpeechGate:
    """Pure: frame levels (dB, pre-emphasised, from the onset tracker) in, open/closed out."""

    def __init__(self, open_db: float, hold_s: float = HOLD_S) -> None:
        self.open_db = open_db
        self._hold_frames = round(hold_s / FRAME_SECONDS)
        self.floor_db: float | None = None
        self._hold = 0
        self.opened = 0  # how many times the gate opened (for tests and the bench)

    @property
    def is_open(self) -> bool:
        return self._hold > 0

    def reset(self) -> None:
        self.floor_db = None
        self._hold = 0

    def update(self, levels: Sequence[float]) -> bool:
        """Account for a block's frame levels; True when the gate is open for this block."""
        was_open = self._hold > 0
        floor = self.floor_db
        for db in levels:
            if db < _DIGITAL_SILENCE_DB:
                self._hold = max(0, self._hold - 1)
                continue
            if floor is None:
                floor = db
            if db > floor + self.open_db:
                self._hold = self._hold_frames
            elif self._hold > 0:
                self._hold -= 1
            floor = floor + _FLOOR_FALL * (db - floor) if db < floor else floor + _FLOOR_RISE_DB
        self.floor_db = floor
        if self._hold > 0 and not was_open:
            self.opened += 1
        # A block in which the gate closed still goes to the model: it holds the end of the hold time.
        return self._hold > 0 or was_open


class GatedScorer(Scorer):
    """Runs ``inner`` only while ``gate`` is open, feeding it from a ring buffer so it misses no onset."""

    def __init__(self, inner: Scorer, gate: SpeechGate, preroll_s: float = PREROLL_S) -> None:
        self.inner = inner
        self.gate = gate
        self.name = inner.name
        self.default_threshold = inner.default_threshold
        self.cascade_threshold = inner.cascade_threshold
        self.default_playback_threshold = inner.default_playback_threshold
        self.default_agree_threshold = inner.default_agree_threshold
        self._preroll = round(preroll_s * SAMPLE_RATE)
        self._ring = RingBuffer(preroll_s + 1.0)
        self._fed = 0  # ring index up to which ``inner`` has seen the audio
        self._warm_until = round(WARMUP_S * SAMPLE_RATE)  # ring index: ungated before it
        self.fed_samples = 0  # samples given to ``inner`` since the last reset (for tests and the bench)

    def score(self, frame: bytes, levels: Sequence[float], end_index: int) -> float | None:
        first = self._ring.append(frame)
        is_open = self.gate.update(levels)
        if not is_open and first >= self._warm_until:
            return None
        if self._fed == first:
            audio = frame  # continuous: the model saw everything up to this block
        else:  # (re)opened: the unseen audio first, at most the pre-roll
            audio = self._ring.read_from(max(self._fed, self._ring.end_index - self._preroll))
        self._fed = self._ring.end_index
        self.fed_samples += len(audio) // 2
        return self.inner.score(audio, levels, end_index)

    def reset(self) -> None:
        self.inner.reset()
        self._fed = self._ring.end_index
        self._warm_until = self._fed + round(WARMUP_S * SAMPLE_RATE)
        self.fed_samples = 0
        self.gate.reset()

    def close(self) -> None:
        self.inner.close()
