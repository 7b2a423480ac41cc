"""Emulator benchmarks over real TLS + HTTP/2 on 127.0.0.1 with httpx as the client.

Rows: audio upload throughput into a Recognize (incremental multipart parse + recording; CLOSE_TALK: no VAD),
the same with NEAR_FIELD cloud endpointing (webrtcvad on every 10 ms frame), round-trip time of 204 events and
of pings, and downchannel push latency (push_directive -> part complete at the client).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import time
from typing import Any

import httpx

from avsd.audio.endpointer import EndpointerSettings
from avsd.avs.multipart import MultipartParser, PartEnd, boundary_from_content_type
from avsd.emulator.server import Emulator

BOUNDARY = "bench-boundary"


def _event(namespace: str, name: str, payload: dict[str, Any], **header: str) -> bytes:
    doc = {
        "context": [],
        "event": {
            "header": {"namespace": namespace, "name": name, "messageId": "m", **header},
            "payload": payload,
        },
    }
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
        "Content-Type: application/json; charset=UTF-8\r\n\r\n"
    ).encode() + json.dumps(doc).encode()


def _audio_header() -> bytes:
    return (
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


async def _bench() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    # Endpointing limits raised so the VAD runs over the whole upload instead of stopping at 10 s of audio.
    endpointer = EndpointerSettings(no_speech_timeout_s=60.0, max_duration_s=60.0)
    async with Emulator(stop_capture=True, reply_text="ok", endpointer=endpointer) as emu:
        ctx = ssl.create_default_context(cafile=str(emu.ca_file))
        async with httpx.AsyncClient(http2=True, verify=ctx, base_url=emu.base_url, timeout=30) as client:
            token = (
                await client.post(
                    "/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": emu.refresh_token}
                )
            ).json()["access_token"]
            auth = {
                "authorization": f"Bearer {token}",
                "content-type": f"multipart/form-data; boundary={BOUNDARY}",
            }
            closing = f"\r\n--{BOUNDARY}--\r\n".encode()
            await client.post("/v20160207/events", headers=auth, content=_event("A", "Warm", {}) + closing)

            # Low-amplitude noise: the VAD has work to do but never ends the utterance early.
            big = bytes((i * 7919) % 5 for i in range(8 * 1024 * 1024))
            # NEAR_FIELD: 55 s of audio (just under max_duration_s), every 10 ms frame through webrtcvad.
            for profile, metric, audio in (
                ("CLOSE_TALK", "upload", big),
                ("NEAR_FIELD", "upload_with_vad", big[: 55 * 32000]),
            ):

                async def body(profile: str = profile, audio: bytes = audio) -> Any:
                    yield (
                        _event("SpeechRecognizer", "Recognize", {"profile": profile}, dialogRequestId="d")
                        + _audio_header()
                    )
                    for offset in range(0, len(audio), 16384):
                        yield audio[offset : offset + 16384]
                    yield closing

                started = time.perf_counter()
                reply = await client.post("/v20160207/events", headers=auth, content=body())
                elapsed = time.perf_counter() - started
                assert reply.status_code == 200
                rows.append(
                    {
                        "metric": f"emulator_{metric}_mb_per_s",
                        "value": round(len(audio) / elapsed / 1e6, 1),
                        "unit": "MB/s",
                        "target": ">= 5 (PCM is 0.032 MB/s)",
                    }
                )

            sync = _event("System", "SynchronizeState", {}) + closing
            times = []
            for _ in range(200):
                started = time.perf_counter()
                reply = await client.post("/v20160207/events", headers=auth, content=sync)
                times.append(time.perf_counter() - started)
                assert reply.status_code == 204
            rows.append(
                {
                    "metric": "emulator_event_204_p50_ms",
                    "value": round(statistics.median(times) * 1e3, 2),
                    "unit": "ms",
                    "target": "<= 5",
                }
            )
            ping_auth = {"authorization": auth["authorization"]}
            times = []
            for _ in range(200):
                started = time.perf_counter()
                assert (await client.get("/ping", headers=ping_auth)).status_code == 204
                times.append(time.perf_counter() - started)
            rows.append(
                {
                    "metric": "emulator_ping_p50_ms",
                    "value": round(statistics.median(times) * 1e3, 2),
                    "unit": "ms",
                    "target": "<= 5",
                }
            )

            async with client.stream("GET", "/v20160207/directives", headers=ping_auth) as dc:
                parser = MultipartParser(boundary_from_content_type(dc.headers["content-type"]))
                chunks = dc.aiter_raw()
                times = []
                for i in range(100):
                    started = time.perf_counter()
                    await emu.push_directive(
                        {
                            "header": {"namespace": "Speaker", "name": "SetVolume", "messageId": str(i)},
                            "payload": {"volume": i},
                        }
                    )
                    while not any(isinstance(e, PartEnd) for e in parser.feed(await anext(chunks))):
                        pass
                    times.append(time.perf_counter() - started)
            rows.append(
                {
                    "metric": "emulator_push_latency_p50_ms",
                    "value": round(statistics.median(times) * 1e3, 2),
                    "unit": "ms",
                    "target": "<= 5",
                }
            )
    return rows


def run() -> list[dict[str, object]]:
    return asyncio.run(_bench())


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
