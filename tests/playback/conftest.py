"""Speech fixtures (espeak-ng -> WAV -> lameenc MP3) and an attachment feeder."""

from __future__ import annotations

import array
import asyncio
import math
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import lameenc
import pytest

from avsd.avs.attachments import Attachment


@dataclass(frozen=True)
class Speech:
    mp3: Path
    wav: Path
    duration_s: float
    data: bytes


def make_speech(directory: Path, text: str, name: str) -> Speech:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (sudo apt install espeak-ng)")
    wav_path = directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-s", "190", "-w", str(wav_path), text], check=True, capture_output=True)
    with wave.open(str(wav_path)) as wav:
        rate, frames = wav.getframerate(), wav.getnframes()
        pcm = wav.readframes(frames)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(48)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(2)
    data = bytes(encoder.encode(pcm) + encoder.flush())
    mp3 = directory / f"{name}.mp3"
    mp3.write_bytes(data)
    return Speech(mp3, wav_path, frames / rate, data)


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """About 2 s of speech: long enough to stop and pause in, short enough for real-time VLC tests."""
    return make_speech(tmp_path_factory.mktemp("speech"), "The weather today is sunny and warm.", "short")


async def feed(attachment: Attachment, data: bytes, *, chunk: int = 1000, delay: float = 0.01) -> float:
    """Feed ``data`` in chunks with delays, finish, and return perf_counter() of the last chunk."""
    last = time.perf_counter()
    for start in range(0, len(data), chunk):
        await asyncio.sleep(delay)
        last = time.perf_counter()
        attachment.feed(data[start : start + chunk])
    attachment.finish()
    return last


def wav_stats(path: str | Path) -> tuple[float, float]:
    """(duration in s, RMS of 16-bit samples) of a WAV file."""
    with wave.open(str(path)) as wav:
        frames = wav.readframes(wav.getnframes())
        duration = wav.getnframes() / wav.getframerate()
    return duration, raw_rms(frames)


def raw_rms(pcm: bytes) -> float:
    samples = array.array("h", pcm[: len(pcm) // 2 * 2])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))
