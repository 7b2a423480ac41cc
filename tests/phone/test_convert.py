"""mu-law against CPython's audioop (the reference implementation), the soxr resampler, MP3 decoding."""

from __future__ import annotations

import importlib
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from avsd.phone.convert import Resampler, decode_speech, frames, resample, ulaw_decode, ulaw_encode

REPLY_MP3 = Path(__file__).resolve().parents[2] / "avsd" / "emulator" / "assets" / "reply.mp3"


def _audioop():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")  # stdlib up to 3.12, audioop-lts on 3.13
        except ImportError:
            pytest.skip("neither stdlib audioop nor audioop-lts is installed: nothing to compare with")


def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    audioop = _audioop()
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)


def test_ulaw_decode_matches_audioop_for_every_byte() -> None:
    audioop = _audioop()
    data = bytes(range(256))
    assert ulaw_decode(data) == audioop.ulaw2lin(data, 2)


def test_ulaw_round_trip_keeps_speech_level() -> None:
    t = np.arange(8000) / 8000
    pcm = (8000 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()
    back = np.frombuffer(ulaw_decode(ulaw_encode(pcm)), dtype="<i2").astype(np.float64)
    original = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    snr = 10 * np.log10(np.sum(original**2) / np.sum((original - back) ** 2))
    assert snr > 30  # G.711 gives ~38 dB on a loud tone


@pytest.mark.parametrize(("rate_in", "rate_out"), [(8000, 16000), (16000, 8000), (24000, 8000)])
def test_resampler_output_does_not_depend_on_chunking(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(3)
    pcm = (rng.standard_normal(rate_in) * 3000).astype("<i2").tobytes()
    whole = resample(pcm, rate_in, rate_out)
    r = Resampler(rate_in, rate_out)
    chunks, offset, rand = [], 0, random.Random(5)
    while offset < len(pcm):
        n = 2 * rand.randint(1, 500)
        chunks.append(r.process(pcm[offset : offset + n]))
        offset += n
    chunks.append(r.flush())
    parts = b"".join(chunks)
    assert parts == whole  # bit for bit
    assert abs(len(whole) // 2 - rate_out) <= 2  # one second in, one second out


def test_downsampling_removes_what_8_khz_cannot_carry() -> None:
    t = np.arange(16000) / 16000
    tone = (10000 * np.sin(2 * math.pi * 5000 * t)).astype("<i2").tobytes()  # above 4 kHz: must vanish
    out = np.frombuffer(resample(tone, 16000, 8000), dtype="<i2").astype(np.float64)[800:-800]
    assert np.sqrt(np.mean(out**2)) < 10000 / math.sqrt(2) / 1000  # > 60 dB down (a plain decimation: 0 dB)


def test_decode_speech_gives_pcm_at_the_line_rate() -> None:
    data = REPLY_MP3.read_bytes()
    pcm8 = decode_speech(data, 8000)
    pcm16 = decode_speech(data, 16000)
    assert len(pcm8) > 8000  # more than half a second of speech
    assert abs(len(pcm16) / 2 / 16000 - len(pcm8) / 2 / 8000) < 0.01
    assert np.abs(np.frombuffer(pcm8, dtype="<i2")).max() > 1000  # not silence


def test_frames_pads_the_last_frame() -> None:
    assert frames(b"\x01" * 5, 4) == [b"\x01" * 4, b"\x01\x00\x00\x00"]
    assert frames(b"", 4) == []
