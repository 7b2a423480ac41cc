"""The emulator's media route over real TLS on 127.0.0.1, the server on its own loop and thread (EmulatorThread):
throughput of a whole 600 s MP3 (4.8 MB, generated once and cached) and first-byte latency of 4 KiB Range
requests on a warm connection, over HTTP/2 and HTTP/1.1 (httpx as the client)."""

from __future__ import annotations

import asyncio
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _common import EmulatorThread, p95

ROUTE = "media:tone/440-600.mp3"
ROUNDS = 5
LATENCY_SAMPLES = 100


async def _measure(url: str, ca_file: Path, http2: bool) -> tuple[float, list[float]]:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(http1=not http2, http2=http2, verify=ctx, timeout=60) as client:
        (await client.get(url)).raise_for_status()  # warm: connection, content cache
        total, started = 0, time.perf_counter()
        for _ in range(ROUNDS):
            async with client.stream("GET", url) as response:
                async for chunk in response.aiter_raw():
                    total += len(chunk)
        mb_per_s = total / (time.perf_counter() - started) / 1e6
        latencies = []
        for i in range(LATENCY_SAMPLES):
            t0 = time.perf_counter()
            async with client.stream("GET", url, headers={"range": f"bytes={i * 4096}-{i * 4096 + 4095}"}) as r:
                async for _ in r.aiter_raw():
                    latencies.append((time.perf_counter() - t0) * 1000)
                    break
        return mb_per_s, latencies


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp, EmulatorThread(Path(tmp), recognize_204=False) as emu:
        url = emu.media.url(ROUTE)
        for label, http2 in (("h2", True), ("http11", False)):
            mb_per_s, latencies = asyncio.run(_measure(url, emu.ca_file, http2))
            rows.append({"metric": f"media_throughput_{label}_mb_per_s", "value": round(mb_per_s, 1),
                         "unit": "MB/s", "target": ">= 10"})
            rows.append({"metric": f"media_first_byte_{label}_p50_ms",
                         "value": round(statistics.median(latencies), 2), "unit": "ms", "target": None})
            rows.append({"metric": f"media_first_byte_{label}_p95_ms", "value": round(p95(latencies), 2),
                         "unit": "ms", "target": "<= 20"})
    return rows
