"""speak_first_byte_to_audio_p95_ms: first attachment byte handed to the player -> first sample out of the player.

VLC runs in its audio callbacks mode (the default), so the end timestamp is the moment the output accepted the
first decoded block (a WAV output here: no device latency is included). The wav row is the miniaudio decoder
the pcm backend shares; pcm itself is not measured (it needs a PortAudio device; it adds that device's latency).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import lameenc

from avsd.avs.attachments import Attachment
from avsd.playback.base import Media
from avsd.playback.decode import PcmFormat
from avsd.playback.item import PlaybackItem
from avsd.playback.outputs import WavFileOutput
from avsd.playback.pcm import WavSinkPlayer
from avsd.playback.vlcplayer import VlcPlayer

RUNS = 15
CHUNK = 1024  # bytes per HTTP/2 DATA frame-ish chunk
CHUNK_DELAY_S = 0.005


def _speech_mp3(directory: Path) -> bytes:
    wav_path = directory / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(wav_path), "Here is the weather for today."], check=True)
    with wave.open(str(wav_path)) as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(48)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    return bytes(encoder.encode(pcm) + encoder.flush())


async def _measure(player: VlcPlayer | WavSinkPlayer, data: bytes) -> list[float]:
    latencies = []
    for _ in range(RUNS):
        attachment = Attachment("b")
        playback = player.play(Media.stream(attachment))
        assert isinstance(playback, PlaybackItem)
        await asyncio.sleep(0.05)  # the player is ready and waiting, as when a Speak precedes its attachment
        first_byte = time.perf_counter()
        attachment.feed(data[:CHUNK])
        for start in range(CHUNK, len(data), CHUNK):
            await asyncio.sleep(CHUNK_DELAY_S)
            attachment.feed(data[start : start + CHUNK])
        attachment.finish()
        async with asyncio.timeout(10):
            await playback.started()
        assert playback.first_audio_time is not None
        latencies.append((playback.first_audio_time - first_byte) * 1000)
        await playback.stop()
    return latencies


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


async def _run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        data = _speech_mp3(directory)
        vlc = VlcPlayer(output=WavFileOutput(directory / "vlc", PcmFormat(24000, 1)))
        try:
            vlc_ms = await _measure(vlc, data)
        finally:
            await vlc.close()
        wav = WavSinkPlayer(directory / "wav", fmt=PcmFormat(24000, 1))
        try:
            wav_ms = await _measure(wav, data)
        finally:
            await wav.close()
    for metric, values in (
        ("speak_first_byte_to_audio_p95_ms", vlc_ms),
        ("speak_first_byte_to_audio_p95_ms_vlc", vlc_ms),
        ("speak_first_byte_to_audio_p95_ms_wav", wav_ms),
    ):
        rows.append({"metric": metric, "value": round(_p95(values), 1), "unit": "ms", "target": "<= 100",
                     "median": round(statistics.median(values), 1), "runs": len(values)})
    return rows


def run() -> list[dict[str, object]]:
    return asyncio.run(_run())


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
