"""Speech-onset tracking, to estimate where a wake word *began*.

Wake-word engines fire near the end of the word, but the Recognize upload must start 500 ms before the word's
start (AVS cloud verification, §6.1 of the protocol notes). This tracker follows the frame energy against an
adaptive noise floor and records an onset whenever energy rises clearly above the floor after a quiet stretch;
the onset is then refined to the first *sample* above the floor, so its error is a few milliseconds
rather than a frame. Pure: frames and sample indices in, indices out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from avsd.audio.frames import FRAME_SAMPLES, SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class OnsetSettings:
    """Tunables of the onset tracker (defaults measured on the synthetic fixture corpus)."""

    rise_db: float = field(
        default=6.0,
        metadata={"help": "Energy above the noise floor that marks speech", "min": 3.0, "max": 30.0},
    )
    quiet_db: float = field(
        default=6.0, metadata={"help": "Energy below floor+this counts as quiet", "min": 1.0, "max": 20.0}
    )
    quiet_s: float = field(
        default=0.15,
        metadata={
            "help": "Quiet needed before a new onset (bridges stop consonants inside a word)",
            "min": 0.02,
            "max": 1.0,
        },
    )
    sample_factor: float = field(
        default=4.0,
        metadata={"help": "Refine: first sample above this times the noise RMS", "min": 1.5, "max": 20.0},
    )
    preemphasis: float = field(
        default=0.9,
        metadata={"help": "Pre-emphasis coefficient before measuring energy", "min": 0.0, "max": 0.99},
    )
    min_sample_level: int = field(
        default=100, metadata={"help": "Refine: absolute minimum sample level", "min": 1, "max": 3000}
    )


# Noise floor: follows falling energy quickly and rising energy slowly (about 2 dB per second of speech), so a
# word does not raise it but a change of room noise is absorbed within seconds.
_FLOOR_FALL = 0.3
_FLOOR_RISE_DB = 0.02
_MAX_ONSETS = 64


class OnsetTracker:
    """Feed every frame with ``process``; ask ``estimate_start`` when a wake word fires."""

    def __init__(self, settings: OnsetSettings | None = None) -> None:
        self.settings = settings or OnsetSettings()
        self._quiet_frames_needed = max(1, round(self.settings.quiet_s * SAMPLE_RATE / FRAME_SAMPLES))
        self.reset()

    def reset(self) -> None:
        self.floor_db: float | None = None
        self.last_db = 0.0
        self._quiet_frames = 0
        self._prev = np.zeros(0, dtype=np.float64)
        self._last = 0.0
        self.onsets: deque[int] = deque(maxlen=_MAX_ONSETS)

    def process(self, block: bytes, end_index: int) -> list[float]:
        """Account for a block of whole frames ending at absolute sample ``end_index``; returns each frame's level
        in dB (new onsets are recorded in :attr:`onsets`). Vectorised over the block: numpy's per-call cost is
        paid once per block, not once per frame."""
        raw = np.frombuffer(block, dtype="<i2").astype(np.float64)
        n_frames = raw.size // FRAME_SAMPLES
        if n_frames == 0:
            return []
        raw = raw[: n_frames * FRAME_SAMPLES]
        # Pre-emphasis (first difference) before measuring: speech onsets are broadband, while room noise
        # (hum, fans, traffic) is mostly low-frequency and would otherwise fake onsets.
        shifted = np.empty_like(raw)
        shifted[0] = self._last
        shifted[1:] = raw[:-1]
        samples = raw - self.settings.preemphasis * shifted
        self._last = float(raw[-1])
        frames = samples.reshape(n_frames, FRAME_SAMPLES)
        levels: list[float] = (10.0 * np.log10(np.einsum("ij,ij->i", frames, frames) / FRAME_SAMPLES + 1.0)).tolist()
        first_index = end_index - n_frames * FRAME_SAMPLES
        for i, db in enumerate(levels):
            self._account(db, frames[i], first_index + (i + 1) * FRAME_SAMPLES)
        self.last_db = levels[-1]
        return levels

    def _account(self, db: float, samples: np.ndarray, end_index: int) -> None:
        if self.floor_db is None:
            self.floor_db = db
        floor = self.floor_db
        if db > floor + self.settings.rise_db and self._quiet_frames >= self._quiet_frames_needed:
            self.onsets.append(self._refine(samples, end_index, floor))
        if db < floor + self.settings.quiet_db:
            self._quiet_frames += 1
        else:
            self._quiet_frames = 0
        self.floor_db = floor + _FLOOR_FALL * (db - floor) if db < floor else floor + _FLOOR_RISE_DB
        self._prev = samples

    def _refine(self, samples: np.ndarray, end_index: int, floor_db: float) -> int:
        # Search the previous frame too: a soft start often begins one frame before energy is "clear".
        both = np.concatenate((self._prev, samples))
        level = max(self.settings.sample_factor * 10 ** (floor_db / 20), self.settings.min_sample_level)
        above = np.flatnonzero(np.abs(both) >= level)
        first = int(above[0]) if above.size else len(self._prev)
        return end_index - len(both) + first

    def estimate_start(
        self,
        end_index: int,
        *,
        max_lookback_s: float = 1.5,
        min_word_s: float = 0.2,
        fallback_s: float = 0.8,
        earliest: bool = False,
    ) -> int:
        """Latest (or ``earliest``) onset from ``max_lookback_s`` to ``min_word_s`` before ``end_index``, else a
        fallback."""
        lo = end_index - round(max_lookback_s * SAMPLE_RATE)
        hi = end_index - round(min_word_s * SAMPLE_RATE)
        for onset in self.onsets if earliest else reversed(self.onsets):
            if lo <= onset <= hi:
                return onset
        return max(0, end_index - round(fallback_s * SAMPLE_RATE))
