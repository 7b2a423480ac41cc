"""The streaming resampler: pitch and level kept, content above 8 kHz not folded into speech, chunking invisible."""

from __future__ import annotations

import numpy as np
import pytest

from avsd.audio.resample import StreamResampler


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def level_at(x: np.ndarray, freq: float, rate: int = 16000) -> float:
    """Amplitude of the ``freq`` component (Hann-windowed DFT bin)."""
    window = np.hanning(len(x))
    spectrum = np.abs(np.fft.rfft(x * window)) / (window.sum() / 2)
    return float(spectrum[round(freq * len(x) / rate)])


@pytest.mark.parametrize("rate", [8000, 22050, 32000, 44100, 48000])
def test_tone_keeps_pitch_and_level(rate: int) -> None:
    out = StreamResampler(rate).process(tone(1000, rate))
    steady = out[2000:14000]
    assert abs(level_at(steady, 1000) - 0.5) < 0.01
    spectrum = np.abs(np.fft.rfft(steady))
    assert abs(int(np.argmax(spectrum)) * 16000 / len(steady) - 1000) < 3


@pytest.mark.parametrize(("rate", "freq", "alias"), [(48000, 12000, 4000), (44100, 10000, 6000)])
def test_content_above_8khz_does_not_alias_into_speech(rate: int, freq: float, alias: float) -> None:
    out = StreamResampler(rate).process(tone(freq, rate))[2000:14000]
    naive = np.interp(np.arange(16000) * rate / 16000, np.arange(rate), tone(freq, rate))[2000:14000]
    assert level_at(naive, alias) > 0.3  # what plain interpolation did: the tone comes back at `alias` Hz
    assert level_at(out, alias) < 0.005  # more than 40 dB down


@pytest.mark.parametrize("rate", [44100, 48000])
def test_chunking_does_not_change_the_output(rate: int) -> None:
    rng = np.random.default_rng(3)
    signal = rng.normal(0, 0.1, rate)
    whole = StreamResampler(rate).process(signal)
    resampler = StreamResampler(rate)
    parts, position = [], 0
    while position < len(signal):
        size = int(rng.integers(1, 900))
        parts.append(resampler.process(signal[position : position + size]))
        position += size
    chunked = np.concatenate(parts)
    assert len(chunked) == len(whole)
    assert np.max(np.abs(chunked - whole)) < 1e-12
    assert abs(len(whole) - 16000) <= resampler.latency_in  # only the kernel's look-ahead is held back


def test_same_rate_passes_through() -> None:
    x = np.linspace(-1, 1, 100)
    assert np.array_equal(StreamResampler(16000).process(x), x)


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 16000), (16000, 8000), (24000, 8000), (44100, 16000)])
@pytest.mark.parametrize("length", [1, 5, 999, 12345])
def test_latency_in_of_silence_lets_every_sample_out(rate_in: int, rate_out: int, length: int) -> None:
    resampler = StreamResampler(rate_in, rate_out)
    out = len(resampler.process(np.ones(length))) + len(resampler.process(np.zeros(resampler.latency_in)))
    assert out >= round(length * rate_out / rate_in)
