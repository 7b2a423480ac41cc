"""The one resampler (issue 14): python-soxr's streaming resampler against avsd's former windowed-sinc one.

For each conversion avsd does (8->16 kHz caller audio, 16->8 and 24->8 kHz replies, 48->16 kHz USB microphones):

- cpu_percent: CPU time to convert one second of audio fed in 20 ms chunks, as % of one core;
- alias_db: a tone the output cannot represent (or, upsampling, the image of an in-band tone) and how loud what
  lands in the output band is, relative to the input tone (lower is better; -inf would be perfect);
- chunk_diff: the largest sample difference between converting the whole clip at once and in random chunks of
  1-700 samples (0 = chunk-independent);
- holdback_ms: fed 20 ms at a time, the most audio the resampler held back (latency it adds to a live stream).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from avsd.phone.convert import Resampler

FloatArray = npt.NDArray[np.float64]

SECONDS = 20.0
CASES = ((8000, 16000, 3000.0), (16000, 8000, 5000.0), (24000, 8000, 6000.0), (48000, 16000, 10000.0))


# ----- the baseline, kept here only to be measured against -----

_ZERO_CROSSINGS = 8  # kernel half-width, in output-rate periods: stop-band ~60 dB down with a Blackman window
_CUTOFF = 0.45  # of the output rate (7.2 kHz for 16 kHz): keeps speech, leaves room for the filter's slope


class _SincResampler:
    """avsd's windowed-sinc resampler before soxr replaced it (avsd/audio/resample.py until issue 14)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
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


class _Sinc:
    """The windowed-sinc resampler behind the same bytes -> bytes face as the soxr one."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self._r = _SincResampler(rate_in, rate_out)

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if last:
            x = np.concatenate([x, np.zeros(self._r.latency_in)])
        y = self._r.process(x)
        return bytes(np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes())

    def flush(self) -> bytes:
        return self.process(b"", last=True)


Factory = Callable[[int, int], "Resampler | _Sinc"]
IMPLEMENTATIONS: dict[str, Factory] = {"soxr": Resampler, "avsd-sinc": _Sinc}


def _tone(freq: float, rate: int, seconds: float, amplitude: float = 10000.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return bytes((amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes())


def _noise(rate: int, seconds: float) -> bytes:
    rng = np.random.default_rng(1)
    return bytes((rng.standard_normal(int(rate * seconds)) * 3000).astype("<i2").tobytes())


def _run(factory: Factory, rate_in: int, rate_out: int, pcm: bytes, chunk_samples: list[int] | None) -> bytes:
    r = factory(rate_in, rate_out)
    out = []
    if chunk_samples is None:
        step = rate_in // 50 * 2  # 20 ms
        for off in range(0, len(pcm), step):
            out.append(r.process(pcm[off : off + step]))
    else:
        off = 0
        for n in chunk_samples:
            out.append(r.process(pcm[off : off + 2 * n]))
            off += 2 * n
    out.append(r.flush())
    return b"".join(out)


def _band_level_db(pcm: bytes, rate: int, low: float, high: float, reference: float) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)[rate // 10 : -rate // 10]
    window = np.hanning(len(x))
    spectrum = np.abs(np.fft.rfft(x * window)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = spectrum[(freqs >= low) & (freqs < high)].sum()
    # Parseval, one-sided rfft: a full-scale tone of this amplitude through the same window would sum to this.
    ref = reference**2 / 2 * float(np.dot(window, window)) * len(x) / 2
    return round(10 * math.log10(band / ref + 1e-20), 1)  # -200: every output sample rounded to 0


def measure(factory: Factory, rate_in: int, rate_out: int, probe: float) -> dict[str, float]:
    noise = _noise(rate_in, SECONDS)
    start = time.process_time()
    _run(factory, rate_in, rate_out, noise, None)
    cpu = time.process_time() - start
    if rate_out > rate_in:  # upsampling: an in-band tone's image above the old Nyquist frequency
        out = _run(factory, rate_in, rate_out, _tone(probe, rate_in, 2.0), None)
        alias = _band_level_db(out, rate_out, rate_in / 2 + 100, rate_out / 2, 10000.0)
    else:  # downsampling: a tone above the new Nyquist frequency folds back into the band
        out = _run(factory, rate_in, rate_out, _tone(probe, rate_in, 2.0), None)
        alias = _band_level_db(out, rate_out, 0, rate_out / 2, 10000.0)
    rng = random.Random(7)
    clip = _noise(rate_in, 2.0)
    total, chunks = len(clip) // 2, []
    while sum(chunks) < total:
        chunks.append(min(rng.randint(1, 700), total - sum(chunks)))
    whole = np.frombuffer(_run(factory, rate_in, rate_out, clip, [total]), dtype="<i2").astype(np.int32)
    parts = np.frombuffer(_run(factory, rate_in, rate_out, clip, chunks), dtype="<i2").astype(np.int32)
    n = min(len(whole), len(parts))
    r = factory(rate_in, rate_out)
    step, produced, held = rate_in // 50, 0, 0.0
    for i in range(100):
        produced += len(r.process(bytes(2 * step))) // 2
        held = max(held, (i + 1) * step * rate_out / rate_in - produced)
    return {
        "holdback_ms": round(1000 * held / rate_out, 1),
        "cpu_percent": round(100 * cpu / SECONDS, 3),
        "alias_db": alias,
        "chunk_diff": int(np.abs(whole[:n] - parts[:n]).max()) if n else -1,
        "length_diff": abs(len(whole) - len(parts)),
    }


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for rate_in, rate_out, probe in CASES:
        for name, factory in IMPLEMENTATIONS.items():
            result = measure(factory, rate_in, rate_out, probe)
            label = f"resample_{name}_{rate_in // 1000}to{rate_out // 1000}k"
            rows.append({"metric": f"{label}_cpu_percent", "value": result["cpu_percent"],
                         "unit": "% of one core", "target": "lower is better"})
            rows.append({"metric": f"{label}_alias_db", "value": result["alias_db"],
                         "unit": f"dB re input ({probe:.0f} Hz probe)", "target": "lower is better"})
            rows.append({"metric": f"{label}_chunk_diff", "value": result["chunk_diff"],
                         "unit": "max |sample diff|, whole vs random chunks", "target": "0"})
            rows.append({"metric": f"{label}_holdback_ms", "value": result["holdback_ms"],
                         "unit": "ms held back at most, fed 20 ms chunks", "target": "lower is better"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
