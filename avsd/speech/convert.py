"""Audio conversion, in one place: resampling, MP3 decode, WAV read/write, G.711 mu-law, mono mix-down.

All PCM is 16-bit little-endian. Resampling uses avsd's streaming windowed-sinc resampler
(:mod:`avsd.audio.resample`); MP3 decode uses miniaudio; mu-law uses numpy tables (``audioop`` is gone in
Python 3.13): the decode table is the G.711 formula, the encode table maps every 16-bit sample once.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import miniaudio
import numpy as np
import numpy.typing as npt

from avsd.audio.resample import StreamResampler
from avsd.speech.tts import Pcm

_MULAW_BIAS = 0x84
_MULAW_CLIP = 8159  # 14-bit


class AudioDecodeError(ValueError):
    """Bytes that are not decodable audio (a broken MP3 or WAV)."""


def _build_mulaw_tables() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8]]:
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    sign = inverted & 0x80
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    decode = np.where(sign != 0, -magnitude, magnitude).astype(np.int16)
    # Encode: the G.711 (CCITT) algorithm on the 14-bit value, for every 16-bit sample once, vectorised.
    samples = np.arange(-32768, 32768, dtype=np.int32) >> 2  # arithmetic shift, as the reference does
    mask = np.where(samples < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(samples), _MULAW_CLIP) + (_MULAW_BIAS >> 2)
    seg_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_ends, mag)  # first segment whose end >= mag
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    encode = ((code ^ mask) & 0xFF).astype(np.uint8)
    return decode, encode


_MULAW_DECODE, _MULAW_ENCODE = _build_mulaw_tables()


def mulaw_decode(data: bytes) -> bytes:
    """G.711 mu-law bytes -> 16-bit PCM (same rate; telephony uses 8 kHz)."""
    return _MULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def mulaw_encode(pcm: bytes) -> bytes:
    """16-bit PCM -> G.711 mu-law bytes (one byte per sample)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.int32)
    return _MULAW_ENCODE[samples + 32768].tobytes()


def to_mono(pcm: Pcm) -> Pcm:
    if pcm.channels == 1:
        return pcm
    frames = np.frombuffer(pcm.data, dtype="<i2").reshape(-1, pcm.channels).astype(np.int32)
    return Pcm(frames.mean(axis=1).round().astype("<i2").tobytes(), pcm.rate, 1)


def resample(pcm: Pcm, rate: int) -> Pcm:
    """Whole-buffer resample of mono PCM (for streams, use :class:`avsd.audio.resample.StreamResampler`)."""
    mono = to_mono(pcm)
    if mono.rate == rate:
        return mono
    resampler = StreamResampler(mono.rate, rate)
    samples = np.frombuffer(mono.data, dtype="<i2").astype(np.float64)
    # Flush the kernel's look-ahead with silence, then keep exactly the expected number of samples.
    out = np.concatenate([resampler.process(samples), resampler.process(np.zeros(resampler.latency_in + 1))])
    wanted = round(len(samples) * rate / mono.rate)
    return Pcm(np.clip(out[:wanted].round(), -32768, 32767).astype("<i2").tobytes(), rate, 1)


def decode_mp3(data: bytes, rate: int | None = None) -> Pcm:
    """MP3 bytes -> mono 16-bit PCM, at ``rate`` if given (miniaudio resamples) else the file's rate."""
    try:
        info = miniaudio.mp3_get_info(data)
        out_rate = rate or info.sample_rate
        decoded = miniaudio.decode(data, miniaudio.SampleFormat.SIGNED16, 1, out_rate)
    except miniaudio.MiniaudioError as exc:
        raise AudioDecodeError(f"not decodable MP3: {exc}") from exc
    return Pcm(decoded.samples.tobytes(), out_rate, 1)


def decode_file(path: Path, rate: int | None = None) -> Pcm:
    """Any file miniaudio reads (MP3, FLAC, WAV, Ogg Vorbis) -> mono 16-bit PCM."""
    try:
        info = miniaudio.get_file_info(str(path))
        decoded = miniaudio.decode_file(str(path), miniaudio.SampleFormat.SIGNED16, 1, rate or info.sample_rate)
    except miniaudio.MiniaudioError as exc:
        raise AudioDecodeError(f"{path.name}: not decodable audio: {exc}") from exc
    return Pcm(decoded.samples.tobytes(), decoded.sample_rate, 1)


def read_wav(source: Path | bytes) -> Pcm:
    """A 16-bit PCM WAV (path or bytes)."""
    try:
        with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise AudioDecodeError(f"{8 * wav.getsampwidth()}-bit WAV; expected 16-bit PCM")
            return Pcm(wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels())
    except (wave.Error, EOFError) as exc:
        raise AudioDecodeError(f"not a PCM WAV: {exc}") from exc


def wav_bytes(pcm: Pcm) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(pcm.channels)
        wav.setsampwidth(2)
        wav.setframerate(pcm.rate)
        wav.writeframes(pcm.data)
    return buf.getvalue()


def write_wav(path: Path, pcm: Pcm) -> None:
    path.write_bytes(wav_bytes(pcm))
