"""Ring buffer, VAD + endpointing on real speech, WAV conversion."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from avsd.audio.endpointer import EndpointerSettings, EndpointResult
from avsd.audio.frames import FRAME_BYTES, IDLE_BLOCK_FRAMES, SILENCE_FRAME, split_frames
from avsd.audio.ring import RingBuffer
from avsd.audio.vad import VadEndpointer, WebRtcVad
from avsd.audio.wav_source import WavFileSource, convert
from avsd.errors import AudioDeviceError

FIXTURES = Path(__file__).parent.parent / "fixtures"
SIDECAR = json.loads((FIXTURES / "speech.json").read_text())


def frame(value: int) -> bytes:
    return np.full(160, value, dtype="<i2").tobytes()


def test_ring_indices_and_wrap() -> None:
    ring = RingBuffer(capacity_s=0.05)  # 800 samples = 5 frames
    firsts = [ring.append(frame(i)) for i in range(12)]
    assert firsts == [i * 160 for i in range(12)]
    assert ring.end_index == 12 * 160
    assert ring.start_index == 7 * 160
    data = ring.read_from(9 * 160)
    assert data == frame(9) + frame(10) + frame(11)
    assert ring.read_from(0) == b"".join(frame(i) for i in range(7, 12))  # clamped to start_index
    assert ring.read_from(ring.end_index) == b""


@pytest.mark.parametrize("sizes", [[320] * 30, [2, 318, 640, 10, 950, 1000], [5000]])
def test_ring_arbitrary_appends_match_linear_history(sizes: list[int]) -> None:
    rng = np.random.default_rng(1)
    ring = RingBuffer(capacity_s=0.1)
    history = b""
    for n in sizes:
        chunk = rng.integers(-3000, 3000, n // 2, dtype=np.int16).tobytes()
        ring.append(chunk)
        history += chunk
    held = len(history) // 2 - ring.start_index
    assert held == min(1600, len(history) // 2)
    assert ring.read_from(ring.start_index) == history[-held * 2 :]
    assert ring.read_from(ring.end_index - 10) == history[-20:]


def test_ring_rejects_odd_bytes() -> None:
    with pytest.raises(ValueError):
        RingBuffer().append(b"\x00")


def test_vad_silence_and_speech() -> None:
    vad = WebRtcVad(2)
    assert not vad.is_speech(SILENCE_FRAME)
    pcm = (FIXTURES / "alexa-what-time-is-it.wav").read_bytes()[44:]
    frames, _ = split_frames(pcm)
    speech = sum(vad.is_speech(f) for f in frames[110:140])  # inside "Alexa"
    assert speech >= 20
    with pytest.raises(ValueError):
        vad.is_speech(b"\x00" * 100)


@pytest.mark.parametrize("name", ["alexa-what-time-is-it", "alexa-what-time-is-it-f3", "no-wake-word"])
def test_vad_endpointer_finds_end_of_command(name: str) -> None:
    meta = SIDECAR[name]
    pcm = (FIXTURES / f"{name}.wav").read_bytes()[44:]
    ep = VadEndpointer(EndpointerSettings(trailing_silence_s=0.7))
    result = EndpointResult.CONTINUE
    for offset in range(0, len(pcm), 999):  # odd chunk sizes: frames are reassembled
        result = ep.process_audio(pcm[offset : offset + 999])
        if result is not EndpointResult.CONTINUE:
            break
    assert result is EndpointResult.END_OF_SPEECH
    assert ep.speech_end_s is not None
    # The VAD hangs over a little; the speech end is within 150 ms after the real end of the command.
    assert 0 <= ep.speech_end_s * 16000 - meta["command_end"] <= 0.15 * 16000
    assert ep.endpointer.elapsed_s == pytest.approx(ep.speech_end_s + 0.7, abs=0.011)


def test_vad_endpointer_silence_times_out() -> None:
    ep = VadEndpointer(EndpointerSettings(no_speech_timeout_s=2.0))
    pcm = (FIXTURES / "silence.wav").read_bytes()[44:]
    assert ep.process_audio(pcm) is EndpointResult.NO_SPEECH_TIMEOUT
    assert not ep.speech_detected


def _write(path: Path, data: np.ndarray, rate: int, channels: int, width: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


@pytest.mark.parametrize(
    ("rate", "channels", "width"), [(16000, 1, 2), (44100, 2, 2), (8000, 1, 1), (48000, 1, 4), (22050, 1, 3)]
)
async def test_wav_source_converts_any_layout(tmp_path: Path, rate: int, channels: int, width: int) -> None:
    t = np.arange(rate) / rate  # 1 s of a 440 Hz tone at half scale
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    if width == 1:
        data = np.round(tone * 127 + 128).astype(np.uint8)
    elif width == 2:
        data = np.round(tone * 32767).astype("<i2")
    elif width == 4:
        data = np.round(tone * 2**31).astype("<i4")
    else:
        v = np.round(tone * 2**23).astype("<i4")
        data = np.frombuffer(v.tobytes(), dtype=np.uint8).reshape(-1, 4)[:, :3].copy()
    if channels == 2:
        data = np.repeat(data, 2)
    path = tmp_path / "tone.wav"
    _write(path, data, rate, channels, width)
    src = WavFileSource(path, realtime=False, pad_silence_s=0.5)
    blocks = [f async for f in src.frames()]
    assert all(len(f) == IDLE_BLOCK_FRAMES * FRAME_BYTES for f in blocks)  # whole blocks of whole frames
    pcm_bytes = b"".join(blocks)
    assert len(pcm_bytes) // FRAME_BYTES == 150  # 1 s tone + 0.5 s padding
    pcm = np.frombuffer(pcm_bytes, dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(pcm[1000:15000] ** 2)) == pytest.approx(0.5 * 32768 / np.sqrt(2), rel=0.03)
    assert not pcm[16100:].any()
    spectrum = np.abs(np.fft.rfft(pcm[:16000]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # 1 Hz bins: the tone kept its pitch


async def test_wav_source_realtime_paces_and_closes() -> None:
    src = WavFileSource(FIXTURES / "alexa.wav", realtime=True)
    start = time.monotonic()
    got = 0
    async with asyncio.timeout(5):
        async for block in src.frames():
            got += len(block) // FRAME_BYTES
            if got >= 2 * IDLE_BLOCK_FRAMES:
                await src.close()
    assert got == 2 * IDLE_BLOCK_FRAMES
    assert time.monotonic() - start >= 2 * IDLE_BLOCK_FRAMES * 0.01 - 0.01  # two blocks, paced in real time


def test_wav_source_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDeviceError, match="cannot read WAV"):
        WavFileSource(tmp_path / "nope.wav")


def test_convert_identity() -> None:
    raw = np.arange(-500, 500, dtype="<i2").tobytes()
    assert convert(raw, rate=16000, channels=1, width=2) == raw


@pytest.mark.parametrize(("old_s", "new_s"), [(2.5, 3.5), (3.5, 2.5), (2.5, 2.5)])
def test_resized_ring_keeps_indices_and_the_newest_audio(old_s: float, new_s: float) -> None:
    ring = RingBuffer(old_s)
    audio = bytes(range(256)) * 250  # 2 s of 16-bit samples, patterned
    for offset in range(0, len(audio), 320):
        ring.append(audio[offset : offset + 320])
    resized = ring.resized(new_s)
    assert resized.end_index == ring.end_index == len(audio) // 2
    assert resized.capacity_samples == round(new_s * 16000)
    keep = min(len(audio) // 2, ring.capacity_samples, resized.capacity_samples)
    assert resized.start_index == ring.end_index - keep
    assert resized.read_from(0) == audio[-keep * 2 :]
    resized.append(b"\x01\x00" * 160)
    assert resized.read_from(resized.end_index - 160) == b"\x01\x00" * 160
