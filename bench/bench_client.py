"""AVS client benchmarks on loopback (issue 2): the device's HTTP/2 client against the emulator.

The emulator runs on its own event loop in a second thread, as a remote server would, so its work does not
delay the client's loop; both threads read the same monotonic clock.

- upload_frame_latency_p95_ms: a 10 ms frame handed to the client (yielded by the audio iterator) until the
  server has received its last byte. Frames paced at real time, like a microphone.
- attachment_first_byte_latency_p95_ms: the server starts writing a directive + attachment on the downchannel
  until the client exposes the attachment's first byte to a reader.
- upload_cpu_percent: CPU time of the client's thread per second of streamed audio, % of one core: 20 s of
  audio handed over as fast as the client takes it, so it counts the client's own work per frame and not the
  audio source's 10 ms wake-ups (a microphone wakes the loop 100 times a second whether or not it uploads).
  upload_cpu_percent_paced is the same at real-time pace, wake-ups included, for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from avsd.avs.attachments import AttachmentStore
from avsd.avs.auth import TokenProvider
from avsd.avs.client import AvsClient, ConnectionSettings, make_ssl_context
from avsd.avs.context import ContextRegistry
from avsd.avs.credentials import Credentials, save_credentials
from avsd.avs.http import HttpClient
from avsd.avs.messages import Directive, Event
from avsd.emulator.server import Emulator

sys.path.insert(0, str(Path(__file__).parent))
from _common import EmulatorThread, p95

FRAME = 320


@contextlib.asynccontextmanager
async def connected(emulator: Emulator, tmp: Path) -> AsyncIterator[tuple[AvsClient, AttachmentStore]]:
    credentials = tmp / "credentials.json"
    save_credentials(credentials, Credentials("bench", emulator.refresh_token))
    ssl_context = make_ssl_context(str(emulator.ca_file))
    async with HttpClient(ssl_context=ssl_context) as http:
        tokens = TokenProvider(token_url=emulator.base_url + "/auth/o2/token", credentials_path=credentials, http=http)
        store = AttachmentStore()
        client = AvsClient(
            ConnectionSettings(endpoint=emulator.base_url),
            tokens,
            context=ContextRegistry(),
            on_directive=lambda d: None,
            attachments=store,
            ssl_context=ssl_context,
        )
        task = asyncio.create_task(client.run())
        await client.wait_connected(10)
        try:
            yield client, store
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def recognize() -> Event:
    payload = {"profile": "CLOSE_TALK", "format": "AUDIO_L16_RATE_16000_CHANNELS_1",
               "initiator": {"type": "TAP", "payload": {}}}
    return Event.new("SpeechRecognizer", "Recognize", payload, dialog_request_id=f"bench-{time.monotonic()}")


async def paced_upload(client: AvsClient, frames: int) -> tuple[list[float], float, float]:
    """Stream ``frames`` frames at real-time pace; returns the handed-over times, CPU seconds, audio seconds."""
    handed: list[float] = []

    async def audio() -> AsyncIterator[bytes]:
        start = time.monotonic()
        for n in range(frames):
            delay = start + n * 0.01 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            handed.append(time.monotonic())
            yield (n % 251).to_bytes(1, "little") * FRAME

    cpu0 = time.thread_time()
    await client.send_event(recognize(), audio=audio())
    cpu = time.thread_time() - cpu0
    return handed, cpu, frames * 0.01


async def unpaced_upload(client: AvsClient, frames: int) -> tuple[float, float]:
    """Stream ``frames`` frames as fast as the client takes them; returns CPU seconds and audio seconds."""

    async def audio() -> AsyncIterator[bytes]:
        for n in range(frames):
            yield (n % 251).to_bytes(1, "little") * FRAME

    cpu0 = time.thread_time()
    await client.send_event(recognize(), audio=audio())
    return time.thread_time() - cpu0, frames * 0.01


def arrival_latencies(handed: list[float], chunks: list[tuple[float, int]], metadata_bytes: int) -> list[float]:
    """Match each frame's last byte to the server-side chunk that completed it."""
    latencies: list[float] = []
    received = 0
    chunk_iter = iter(chunks)
    current_time, current_end = 0.0, 0
    for n, t in enumerate(handed):
        needed = metadata_bytes + (n + 1) * FRAME
        while current_end < needed:
            current_time, length = next(chunk_iter)
            received += length
            current_end = received
        latencies.append((current_time - t) * 1000)
    return latencies


async def measure(emulator_thread: EmulatorThread, tmp: Path) -> list[dict[str, Any]]:
    emulator = emulator_thread.emulator
    rows: list[dict[str, Any]] = []
    async with connected(emulator, tmp) as (client, store):
        await paced_upload(client, 50)  # warm up the connection and the code paths
        handed, _, _ = await paced_upload(client, 500)
        record = [r for r in emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"][-1]
        # audio_chunks holds only audio-part bytes, so no metadata offset.
        latencies = arrival_latencies(handed, record.audio_chunks, 0)
        rows.append({"metric": "upload_frame_latency_p95_ms", "value": round(p95(latencies), 3), "unit": "ms",
                     "target": "<= 5"})

        cpu, audio_s = await unpaced_upload(client, 2000)
        rows.append({"metric": "upload_cpu_percent", "value": round(cpu / audio_s * 100, 3), "unit": "% of one core",
                     "target": "<= 1"})
        _, cpu, audio_s = await paced_upload(client, 500)
        rows.append({"metric": "upload_cpu_percent_paced", "value": round(cpu / audio_s * 100, 3),
                     "unit": "% of one core", "target": "info"})

        first_byte: list[float] = []
        mp3 = bytes(range(256)) * 64
        for n in range(40):
            content_id = f"bench-{n}"
            directive = Directive.new("Alerts", "SetAlert", {"url": f"cid:{content_id}"})
            written = time.monotonic()
            emulator_thread.call(lambda d=directive, c=content_id: emulator.push_directive(d, {c: mp3}))
            attachment = store.get(content_id)
            async with asyncio.timeout(5):
                while attachment.first_byte_at is None:  # noqa: ASYNC110 - measuring, so no extra wake-up path
                    await asyncio.sleep(0.0005)
            first_byte.append((attachment.first_byte_at - written) * 1000)
        rows.append({"metric": "attachment_first_byte_latency_p95_ms", "value": round(p95(first_byte), 3),
                     "unit": "ms", "target": "<= 5"})
    return rows


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        emulator_thread = EmulatorThread(Path(tmp) / "certs")
        with emulator_thread:
            return asyncio.run(measure(emulator_thread, Path(tmp)))


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
