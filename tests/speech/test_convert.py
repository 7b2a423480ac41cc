"""Audio conversion: mu-law against the reference implementation, resampling, MP3 decode, WAV."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from avsd.speech import convert
from avsd.speech.tts import Pcm, encode_mp3

with warnings.catch_warnings():  # the stdlib module on 3.11/3.12 (deprecated), audioop-lts on 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    try:  # the reference implementation, test-only
        import audioop
    except ImportError:  # pragma: no cover
        audioop = None  # type: ignore[assignment]


def sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 12000.0) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


@pytest.mark.skipif(audioop is None, reason="no audioop reference (pip install audioop-lts on 3.13)")
def test_mulaw_matches_audioop_for_every_sample_and_code() -> None:
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert convert.mulaw_encode(every_sample) == audioop.lin2ulaw(every_sample, 2)
    every_code = bytes(range(256))
    assert convert.mulaw_decode(every_code) == audioop.ulaw2lin(every_code, 2)


def test_mulaw_round_trip_error_is_small() -> None:
    pcm = sine(440, 8000)
    back = np.frombuffer(convert.mulaw_decode(convert.mulaw_encode(pcm)), dtype="<i2").astype(float)
    orig = np.frombuffer(pcm, dtype="<i2").astype(float)
    snr = 10 * math.log10(np.sum(orig**2) / np.sum((orig - back) ** 2))
    assert snr > 30  # G.711 gives ~38 dB on a loud sine


def test_resample_keeps_length_and_frequency() -> None:
    out = convert.resample(Pcm(sine(1000, 8000), 8000), 16000)
    assert out.rate == 16000 and len(out.data) == 2 * 16000
    x = np.frombuffer(out.data, dtype="<i2").astype(float)
    peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x)
    assert abs(peak_hz - 1000) < 2


def test_mp3_round_trip_and_broken_mp3() -> None:
    pcm = sine(500, 22050, 0.5)
    decoded = convert.decode_mp3(encode_mp3(pcm, 22050), rate=16000)
    assert decoded.rate == 16000
    assert abs(decoded.seconds - 0.5) < 0.1
    with pytest.raises(convert.AudioDecodeError):
        convert.decode_mp3(b"this is not an mp3 file at all" * 10)


def test_wav_round_trip_and_stereo_to_mono(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stereo = Pcm(np.array([100, 300, -100, -300], dtype="<i2").tobytes(), 16000, 2)
    convert.write_wav(tmp_path / "a.wav", stereo)
    back = convert.read_wav(tmp_path / "a.wav")
    assert back == stereo
    assert convert.to_mono(back).data == np.array([200, -200], dtype="<i2").tobytes()
    with pytest.raises(convert.AudioDecodeError):
        convert.read_wav(b"RIFF....WAVEjunk")
