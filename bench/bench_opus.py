"""Opus Recognize audio (issue 4): what encoding costs the device.

- opus_encode_cpu_percent: CPU time to encode one second of speech the way the device does (16 kHz mono, VOIP,
  hard CBR 32 kbps, complexity 4, 10 ms frames paired into 20 ms packets), as % of one core.
- opus_encode_cpu_percent_64k: the same at 64 kbps.
- opus_encode_cpu_percent_app_audio: the same encoder with application AUDIO instead of VOIP, for comparison
  (the module docstring of avsd/audio/opus.py says why the device uses VOIP).
- opus_decode_cpu_percent: the emulator's side, decoding a 32 kbps upload back to PCM.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from avsd.audio.frames import FRAME_BYTES, SAMPLE_RATE
from avsd.audio.opus import COMPLEXITY, PACKET_PCM_BYTES, PACKET_SAMPLES, OpusEncoder, OpusStreamDecoder
from avsd.audio.wav_source import load_wav

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SECONDS = 30.0


def _speech(seconds: float) -> bytes:
    clip = load_wav(FIXTURES / "alexa-what-time-is-it.wav")
    pcm = clip * (int(seconds * SAMPLE_RATE * 2) // len(clip) + 1)
    return pcm[: int(seconds * SAMPLE_RATE * 2) // FRAME_BYTES * FRAME_BYTES]


def _percent(cpu_s: float, audio_s: float) -> float:
    return round(100.0 * cpu_s / audio_s, 3)


def _encode_device(pcm: bytes, bitrate: int) -> tuple[float, bytes]:
    encoder = OpusEncoder(bitrate)
    packets: list[bytes] = []
    start = time.process_time()
    for offset in range(0, len(pcm), FRAME_BYTES):  # frame by frame, as the capture hands them over
        packets += encoder.feed(pcm[offset : offset + FRAME_BYTES])
    packets += encoder.flush()
    return time.process_time() - start, b"".join(packets)


def _encode_app_audio(pcm: bytes) -> float:
    import opuslib_next

    encoder = opuslib_next.Encoder(SAMPLE_RATE, 1, opuslib_next.APPLICATION_AUDIO)
    encoder.bitrate, encoder.vbr, encoder.complexity = 32000, 0, COMPLEXITY
    start = time.process_time()
    for offset in range(0, len(pcm) - PACKET_PCM_BYTES + 1, PACKET_PCM_BYTES):
        encoder.encode(pcm[offset : offset + PACKET_PCM_BYTES], PACKET_SAMPLES)
    return time.process_time() - start


def run() -> list[dict[str, object]]:
    pcm = _speech(SECONDS)
    audio_s = len(pcm) / 2 / SAMPLE_RATE
    cpu_32k, stream = _encode_device(pcm, 32000)
    cpu_64k, _ = _encode_device(pcm, 64000)
    decoder = OpusStreamDecoder()
    start = time.process_time()
    decoder.feed(stream)
    decoder.finish()
    cpu_decode = time.process_time() - start
    return [
        {
            "metric": "opus_encode_cpu_percent",
            "value": _percent(cpu_32k, audio_s),
            "unit": "% of one core",
            "target": "<= 5",
        },
        {
            "metric": "opus_encode_cpu_percent_64k",
            "value": _percent(cpu_64k, audio_s),
            "unit": "% of one core",
            "target": "<= 5",
        },
        {
            "metric": "opus_encode_cpu_percent_app_audio",
            "value": _percent(_encode_app_audio(pcm), audio_s),
            "unit": "% of one core",
            "target": "comparison only",
        },
        {
            "metric": "opus_decode_cpu_percent",
            "value": _percent(cpu_decode, audio_s),
            "unit": "% of one core",
            "target": "comparison only",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
