"""Telephone audio conversion on top of the one converter (:mod:`avsd.speech.convert`): G.711 mu-law, a streaming
resampler on PCM bytes, MP3 decoding to the line rate.

Resampling goes through avsd's one resampler, :mod:`avsd.audio.resample` (python-soxr, chosen by measurement:
``bench/bench_resample.py``, numbers in the README).

Pure functions and small stateful objects; no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from avsd.audio.resample import StreamResampler
from avsd.errors import AvsdError
from avsd.speech.convert import mulaw_decode, mulaw_encode

# mu-law is the one converter's (avsd/speech/convert.py: numpy tables, identical to audioop for every input);
# the telephone code calls it by G.711's name.
ulaw_encode = mulaw_encode
ulaw_decode = mulaw_decode


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
