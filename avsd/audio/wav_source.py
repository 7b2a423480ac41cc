"""Audio from a WAV file, converted to the frame format (any rate, channel count and 8/16/24/32-bit width).

Conversion uses numpy (``audioop`` is gone in Python 3.13): channels are averaged, the rate is changed by
linear interpolation (adequate for speech fed to a VAD/wake word/ASR). ``realtime=True`` paces frames at
wall-clock rate (the daemon's ``--input file.wav`` demo); ``False`` yields as fast as the consumer takes them.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from avsd.audio.frames import FRAME_BYTES, IDLE_BLOCK_FRAMES, SAMPLE_RATE
from avsd.audio.resample import StreamResampler
from avsd.errors import AudioDeviceError


def load_wav(path: Path) -> bytes:
    """Read a WAV file and return 16 kHz mono S16_LE bytes."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioDeviceError(f"cannot read WAV file {path}: {exc}") from exc
    return convert(raw, rate=rate, channels=channels, width=width)


def convert(raw: bytes, *, rate: int, channels: int, width: int) -> bytes:
    """PCM of any common layout -> 16 kHz mono S16_LE (band-limited resampling, see avsd.audio.resample)."""
    x = _mix_down(_to_float(raw, width), channels)
    if rate != SAMPLE_RATE and len(x):
        resampler = StreamResampler(rate)
        n_out = round(len(x) * SAMPLE_RATE / rate)
        # The resampler holds back what its filter still needs; flushing lets the last samples out.
        x = np.concatenate([resampler.process(x), resampler.flush()])[:n_out]
        x = np.pad(x, (0, n_out - len(x)))
    return to_s16(x)


def to_mono(raw: bytes, channels: int) -> npt.NDArray[np.float64]:
    """S16_LE interleaved -> float mono in -1..1."""
    return _mix_down(_to_float(raw, 2), channels)


def to_s16(x: npt.NDArray[np.float64]) -> bytes:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()


def _mix_down(x: npt.NDArray[np.float64], channels: int) -> npt.NDArray[np.float64]:
    if channels > 1:
        mixed: npt.NDArray[np.float64] = x[: len(x) - len(x) % channels].reshape(-1, channels).mean(axis=1)
        return mixed
    return x


def _to_float(raw: bytes, width: int) -> npt.NDArray[np.float64]:
    if width == 1:  # WAV 8-bit is unsigned
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if width == 3:
        b = np.frombuffer(raw[: len(raw) - len(raw) % 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float64) / float(1 << 23)
    if width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    raise AudioDeviceError(f"unsupported WAV sample width: {width} bytes")


class WavFileSource:
    """Frames from a WAV file, then ``pad_silence_s`` of silence (so an endpointer can finish)."""

    def __init__(self, path: Path, *, realtime: bool = True, pad_silence_s: float = 0.0) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.pad_silence_s = pad_silence_s
        self.block_frames = IDLE_BLOCK_FRAMES
        self.started_at: float | None = None  # time.monotonic() when the first sample was "spoken" (realtime)
        self._closed = False
        self._pcm = load_wav(self.path)  # fail at construction, not on first read

    @property
    def duration_s(self) -> float:
        return len(self._pcm) / 2 / SAMPLE_RATE + self.pad_silence_s

    async def frames(self) -> AsyncIterator[bytes]:
        """Blocks of ``block_frames`` whole frames (the last one padded with silence)."""
        pcm = self._pcm + bytes(round(self.pad_silence_s * SAMPLE_RATE) * 2)
        if len(pcm) % FRAME_BYTES:  # the last partial frame is padded with silence
            pcm += bytes(FRAME_BYTES - len(pcm) % FRAME_BYTES)
        start = time.monotonic()
        self.started_at = start
        offset = 0
        handed = 0
        while offset < len(pcm) and not self._closed:
            block = pcm[offset : offset + self.block_frames * FRAME_BYTES]
            offset += len(block)
            if self.realtime:
                # A block is handed over when its last sample has been "spoken", like a microphone's buffer.
                # Pace against the start time, not per block, so sleep jitter does not accumulate.
                delay = start + offset / (2 * SAMPLE_RATE) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                handed += 1
                if handed % 30 == 0:
                    await asyncio.sleep(0)  # let other tasks run during a fast replay
            yield block

    async def close(self) -> None:
        self._closed = True
