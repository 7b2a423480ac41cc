"""Streaming sample-rate conversion to 16 kHz: a windowed-sinc interpolator that keeps its state across chunks.

USB microphones often record only at 44.1 or 48 kHz. Plain linear interpolation down to 16 kHz folds everything
between 8 and 24 kHz back into the speech band (aliasing) and, done chunk by chunk, adds a seam at every chunk
edge. This resampler low-passes at 0.45 x 16 kHz and interpolates between input samples with the same kernel,
so the output does not depend on how the input was chunked. Pure numpy; no I/O.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from avsd.audio.frames import SAMPLE_RATE

FloatArray = npt.NDArray[np.float64]

_ZERO_CROSSINGS = 8  # kernel half-width, in output-rate periods: stop-band ~60 dB down with a Blackman window
_CUTOFF = 0.45  # of the output rate (7.2 kHz for 16 kHz): keeps speech, leaves room for the filter's slope


class StreamResampler:
    """Feed float samples at ``rate_in`` in chunks of any size; get float samples at 16 kHz back."""

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError("sample rates must be positive")
        self.rate_in, self.rate_out = rate_in, rate_out
        self._step = rate_in / rate_out  # input samples per output sample
        scale = max(1.0, self._step)  # widen the kernel when decimating
        self._half = math.ceil(_ZERO_CROSSINGS * scale)
        self._fc = _CUTOFF / scale  # cutoff in cycles per input sample (x2 below: sinc argument)
        # History: input samples from absolute index self._base on; the kernel reaches _half samples back, so
        # start with that much silence before sample 0.
        self._hist: FloatArray = np.zeros(self._half, dtype=np.float64)
        self._base = -self._half
        self._produced = 0  # outputs so far; output n sits at input position n * step (exact, chunk-independent)
        self._taps = np.arange(-self._half + 1, self._half + 1)

    @property
    def latency_in(self) -> int:
        """Input samples held back until the kernel has seen what follows them."""
        return self._half + math.ceil(self._step)

    def process(self, samples: FloatArray) -> FloatArray:
        if self.rate_in == self.rate_out:
            return samples.astype(np.float64, copy=False)
        self._hist = np.concatenate([self._hist, samples.astype(np.float64, copy=False)])
        last = self._base + len(self._hist) - 1  # newest input index held
        # Every output whose kernel is fully inside the history: floor(t) + half <= last.
        count = max(0, math.floor((last - self._half) / self._step) + 1 - self._produced)
        if count == 0:
            return np.zeros(0, dtype=np.float64)
        times = (self._produced + np.arange(count)) * self._step
        index = np.floor(times).astype(np.int64)[:, None] + self._taps[None, :]
        distance = times[:, None] - index
        weights = self._kernel(distance)
        weights /= weights.sum(axis=1, keepdims=True)  # exact unity gain at DC, whatever the phase
        out: FloatArray = np.einsum("ij,ij->i", weights, self._hist[index - self._base])
        self._produced += count
        keep_from = math.floor(self._produced * self._step) - self._half + 1  # oldest sample still needed
        drop = max(0, keep_from - self._base)
        if drop:
            self._hist = self._hist[drop:]
            self._base += drop
        return out

    def _kernel(self, distance: FloatArray) -> FloatArray:
        window = 0.42 + 0.5 * np.cos(np.pi * distance / self._half) + 0.08 * np.cos(2 * np.pi * distance / self._half)
        window[np.abs(distance) >= self._half] = 0.0
        return np.sinc(2 * self._fc * distance) * window
