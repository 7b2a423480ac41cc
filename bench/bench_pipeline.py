"""Voice-pipeline benchmarks (issue 3), against the emulator on loopback.

- idle_cpu_percent[_<engine>]: `avsd run` as its own process, listening to room noise from a WAV at real-time
  pace (no wake word), connected to the emulator; its CPU over 10 s, % of one core.
- idle_rss_mb: that process's resident memory (default engine).
- wake_to_first_audio_byte_p95_ms: wake-word detection until the first audio byte of the Recognize reaches the
  server, on a warm connection (the daemon in this process, real speech at real-time pace).
- end_of_speech_to_upload_complete_p95_ms: the moment the command's last sample is spoken (real-time pace) until
  the server has the whole upload, minus the trailing-silence setting (700 ms).

The emulator runs on its own loop in a thread (bench/_common.py), as a remote server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from avsd.audio.frames import SAMPLE_RATE
from avsd.audio.wav_source import WavFileSource, load_wav
from avsd.avs.credentials import Credentials, save_credentials
from avsd.config import Config, override
from avsd.playback.base import PlaybackSettings
from avsd.root import build_daemon
from avsd.wake.base import WakeSettings

sys.path.insert(0, str(Path(__file__).parent))
from _common import EmulatorThread, p95

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SPEECH = json.loads((FIXTURES / "speech.json").read_text())
TRAILING_SILENCE_S = 0.7
IDLE_MEASURE_S = 8.0


def noise(seconds: float, seed: int, level: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).integers(-level, level, round(seconds * SAMPLE_RATE), dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def daemon_config(tmp: Path, emulator_thread: EmulatorThread, engine: str) -> Path:
    emulator = emulator_thread.emulator
    state = tmp / f"state-{engine}"
    save_credentials(state / "credentials.json", Credentials("bench", emulator.refresh_token))
    path = tmp / f"{engine}.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{state}"\nlog_level = "warning"\n'
        f'[avs]\nendpoint = "{emulator.base_url}"\nca_file = "{emulator.ca_file}"\n'
        f'[wake]\nengine = "{engine}"\n'
        f'[playback]\nbackend = "wav"\nwav_dir = "{tmp / "played"}"\n'
    )
    return path


def idle_process(config: Path, wav: Path) -> tuple[float, float]:
    """CPU % of one core and RSS (MiB) of `avsd run` listening to ``wav``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "avsd", "run", "--config", str(config), "--input", str(wav)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        ps = psutil.Process(process.pid)
        time.sleep(3.0)  # start-up: imports, model load, TLS, SynchronizeState
        before, started = ps.cpu_times(), time.monotonic()
        time.sleep(IDLE_MEASURE_S)
        after, ended = ps.cpu_times(), time.monotonic()
        rss = ps.memory_info().rss / 2**20
        if process.poll() is not None:
            raise RuntimeError(f"avsd run exited early with {process.returncode}")
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
    cpu = (after.user + after.system) - (before.user + before.system)
    return cpu / (ended - started) * 100, rss


async def dialog_latencies(emulator_thread: EmulatorThread, tmp: Path, trials: int) -> tuple[list[float], list[float]]:
    """One WAV with ``trials`` wake-word dialogs in a row, spoken at real-time pace to the daemon in this process."""
    emulator = emulator_thread.emulator
    state = tmp / "state-latency"
    save_credentials(state / "credentials.json", Credentials("bench", emulator.refresh_token))
    config = Config()
    for key, value in (
        ("avs.endpoint", emulator.base_url),
        ("avs.ca_file", str(emulator.ca_file)),
        ("daemon.state_dir", str(state)),
    ):
        config = override(config, key, value)
    config = dataclasses.replace(config, playback=PlaybackSettings(backend="wav", wav_dir=str(tmp / "played")))
    info = SPEECH["alexa-what-time-is-it"]
    speech = np.frombuffer(load_wav(FIXTURES / "alexa-what-time-is-it.wav"), dtype="<i2").astype(np.int32)
    lead, gap = 0.5, 2.0
    segments, command_ends = [], []
    position = 0
    for n in range(trials):
        voiced = np.clip(speech + noise(len(speech) / SAMPLE_RATE, 100 + n)[: len(speech)], -32768, 32767)
        segment = np.concatenate([noise(lead, n), voiced.astype(np.int16), noise(gap, 200 + n)])
        command_ends.append((position + round(lead * SAMPLE_RATE) + info["command_end"]) / SAMPLE_RATE)
        position += len(segment)
        segments.append(segment)
    source = WavFileSource(write_wav(tmp / "dialogs.wav", np.concatenate(segments)), realtime=True)
    daemon = build_daemon(config, open_audio=lambda: source)
    await daemon.run(stop_when_audio_ends=True, wait_for_connection_s=10.0)
    records = [r for r in emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
    started = daemon.dialog.dialog_started
    if len(records) != trials or len(started) != trials or source.started_at is None:
        raise RuntimeError(f"expected {trials} dialogs, got {len(started)} detections and {len(records)} uploads")
    wake_latency = [(r.audio_chunks[0][0] - s[0]) * 1000 for r, s in zip(records, started, strict=True)]
    end_latency = [
        (r.audio_chunks[-1][0] - (source.started_at + end) - TRAILING_SILENCE_S) * 1000
        for r, end in zip(records, command_ends, strict=True)
    ]
    return wake_latency, end_latency


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        emulator_thread = EmulatorThread(tmp / "certs")
        with emulator_thread:
            wav = write_wav(tmp / "room.wav", noise(IDLE_MEASURE_S + 10, 1))
            default = WakeSettings().engine
            for engine in (default, "openwakeword", "none"):
                cpu, rss = idle_process(daemon_config(tmp, emulator_thread, engine), wav)
                rows.append({"metric": f"idle_cpu_percent_{engine}", "value": round(cpu, 2), "unit": "% of one core",
                             "target": "<= 1" if engine == default else "info"})
                if engine == default:
                    rows.insert(0, {"metric": "idle_cpu_percent", "value": round(cpu, 2), "unit": "% of one core",
                                    "target": "<= 1"})
                    rows.append({"metric": "idle_rss_mb", "value": round(rss, 1), "unit": "MiB", "target": "<= 80"})
            wake, end = asyncio.run(dialog_latencies(emulator_thread, tmp, trials=5))
            rows.append({"metric": "wake_to_first_audio_byte_p95_ms", "value": round(p95(wake), 2), "unit": "ms",
                         "target": "<= 20", "samples": len(wake)})
            rows.append({"metric": "end_of_speech_to_upload_complete_p95_ms", "value": round(p95(end), 2),
                         "unit": "ms", "target": "<= 30", "samples": len(end)})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
