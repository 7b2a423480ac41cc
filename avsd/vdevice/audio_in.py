"""Audio messages of the Virtual Device API -> 16 kHz mono 16-bit PCM (what a Recognize carries).

Formats as Bespoken documents them: ``raw`` (with ``frame_rate``, ``channels``, ``sample_width``; the defaults
16000 / 1 / 2), ``wav``, ``mp3``, ``ogg``. This module only reads Bespoken's parameters; decoding goes through
miniaudio and the rate change through the one converter (:func:`avsd.speech.convert.resample`).
"""

from __future__ import annotations

import base64
import binascii
import io
import wave

import miniaudio
import numpy as np

from avsd.speech.convert import resample, wav_bytes
from avsd.speech.tts import Pcm

TARGET_RATE = 16000
FORMATS = ("raw", "wav", "mp3", "ogg")


class AudioFormatError(ValueError):
    """``format`` is not one Bespoken accepts."""


class AudioDecodeError(ValueError):
    """The audio bytes are not what their format says (or not base64)."""


def decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioDecodeError("not base64") from exc


def to_pcm16k(
    data: bytes, fmt: str = "raw", *, frame_rate: int = TARGET_RATE, channels: int = 1, sample_width: int = 2
) -> bytes:
    fmt = (fmt or "raw").lower()
    if fmt not in FORMATS:
        raise AudioFormatError(fmt)
    if not data:
        raise AudioDecodeError("empty audio")
    if fmt == "raw":
        if sample_width not in (1, 2, 4) or channels < 1 or not 4000 <= frame_rate <= 192000:
            raise AudioDecodeError("bad frame_rate, channels or sample_width")
        samples = _raw_to_float(data, sample_width, channels)
        rate = frame_rate
    elif fmt == "wav":
        samples, rate = _wav(data)
    else:
        try:
            decoded = miniaudio.decode(data, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1)
        except miniaudio.DecodeError as exc:
            raise AudioDecodeError(f"not {fmt} audio") from exc
        samples = np.frombuffer(bytes(decoded.samples), dtype="<i2").astype(np.float32) / 32768.0
        rate = decoded.sample_rate
    clipped = np.clip(samples * 32768.0, -32768, 32767).astype("<i2")
    return resample(Pcm(clipped.tobytes(), rate, 1), TARGET_RATE).data


def _raw_to_float(data: bytes, sample_width: int, channels: int) -> np.ndarray:
    frame = sample_width * channels
    data = data[: len(data) - len(data) % frame]
    if not data:
        raise AudioDecodeError("shorter than one frame")
    if sample_width == 1:
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif sample_width == 2:
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = np.frombuffer(data, dtype="<i4").astype(np.float32) / 2147483648.0
    mono: np.ndarray = samples.reshape(-1, channels).mean(axis=1)
    return mono


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    try:
        with wave.open(io.BytesIO(data)) as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioDecodeError("not a WAV file") from exc
    return _raw_to_float(frames, width, channels), rate


def pcm_to_wav(pcm: bytes, rate: int = TARGET_RATE) -> bytes:
    return wav_bytes(Pcm(pcm, rate, 1))
