"""Telephone audio conversion: G.711 mu-law without ``audioop``, one streaming resampler, MP3 decoding.

Python 3.13 removed ``audioop``; mu-law here is two numpy lookup tables built from the same algorithm as
CPython's ``audioop.lin2ulaw`` / ``ulaw2lin`` (Sun's g711.c, 14-bit magnitude): a test compares every one of the
65,536 inputs with ``audioop`` where it still exists. The tables cost 64 KiB + 512 bytes, built once.

Resampling goes through avsd's one resampler, :mod:`avsd.audio.resample` (python-soxr, chosen by measurement:
``bench/bench_resample.py``, numbers in the README).

Pure functions and small stateful objects; no I/O. Written to move into ``avsd/speech/convert.py`` (the project's
one converter) when that module exists.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from avsd.audio.resample import StreamResampler
from avsd.errors import AvsdError

Int16Array = npt.NDArray[np.int16]

_BIAS = 0x84
_CLIP = 8159  # 14-bit magnitude clip used by audioop (g711.c's st_14linear2ulaw)
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 16-bit -> 14-bit, arithmetic shift like audioop
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _CLIP) + (_BIAS >> 2)
    seg = np.searchsorted(_SEG_END, mag, side="left")  # first segment whose end >= magnitude
    uval = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


def _build_decode_table() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


_ENCODE = _build_encode_table()  # index: sample + 32768
_DECODE = _build_decode_table()


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit little-endian PCM -> mu-law bytes (one byte per sample)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return bytes(_ENCODE[samples].tobytes())


def ulaw_decode(data: bytes) -> bytes:
    """mu-law bytes -> 16-bit little-endian PCM."""
    return bytes(_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes())


class Resampler:
    """avsd's one resampler (:class:`avsd.audio.resample.StreamResampler`, soxr) on 16-bit PCM bytes.

    ``process(bytes) -> bytes``; the output does not depend on how the input was chunked (soxr runs in float64
    and each sample is rounded on its own).
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._resampler = StreamResampler(rate_in, rate_out)

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self.rate_in == self.rate_out:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        out = self._resampler.process(samples, last=last)
        return bytes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())

    def flush(self) -> bytes:
        """The samples held back by the filter (call once, at the end of a stream)."""
        return self.process(b"", last=True)


def resample(pcm: bytes, rate_in: int, rate_out: int) -> bytes:
    """A whole clip at once (a Speak reply)."""
    resampler = Resampler(rate_in, rate_out)
    return resampler.process(pcm) + resampler.flush()


def decode_speech(data: bytes, rate_out: int) -> bytes:
    """A Speak attachment (MP3, or a WAV) -> mono 16-bit PCM at ``rate_out``, resampled by the one resampler."""
    try:
        import miniaudio
    except ImportError as exc:
        raise AvsdError("miniaudio is not installed: pip install miniaudio") from exc
    try:
        decoded = miniaudio.decode(data, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1)
    except miniaudio.DecodeError as exc:  # miniaudio's errors mapped here, once
        raise AvsdError(f"cannot decode the reply audio: {exc}") from exc
    pcm = bytes(np.asarray(decoded.samples, dtype="<i2").tobytes())
    return resample(pcm, decoded.sample_rate, rate_out)


def frames(pcm: bytes, frame_bytes: int) -> list[bytes]:
    """Cut ``pcm`` into whole frames; the last one is padded with silence (0 for PCM; callers encode after)."""
    count = math.ceil(len(pcm) / frame_bytes) if pcm else 0
    padded = pcm.ljust(count * frame_bytes, b"\x00")
    return [padded[i * frame_bytes : (i + 1) * frame_bytes] for i in range(count)]
