"""Attachment memory: the real daemon (``python -m avsd run``) receives a Speak whose binary part never ends.

The emulator pushes ``SpeechSynthesizer.Speak`` (``url: cid:endless``) on the downchannel, then a binary part
with that Content-ID and ``part_mib`` MiB of data without a closing delimiter, over real HTTP/2 + TLS. The
daemon's RSS (``VmRSS`` of the process) is sampled before, during and after. Before issue 8 the RSS grew one-
for-one (23 -> 279 MiB for 256 MiB); now the part fails at ``[attachments] max_bytes`` and its memory is freed:

- ``attachment_rss_growth_peak_mib``: peak RSS minus RSS before (target: about ``max_bytes``, far below the
  part; measured: the cap + ~3.5 MiB, the HTTP/2 receive path and what the allocator keeps);
- ``attachment_rss_growth_after_mib``: RSS after the part, minus before;
- ``attachment_speak_failed_reported``: the Speak failed and the daemon said so (System.ExceptionEncountered
  arrived at the emulator over the same connection: 1 = yes);
- ``attachment_connection_survived``: after the endless part is finally closed, a SetVolume pushed on the same
  downchannel is answered with VolumeChanged, without a reconnect (1 = yes).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from avsd.avs.messages import Directive
from avsd.emulator.replies import DOWNCHANNEL_BOUNDARY
from avsd.emulator.server import Emulator
from bench.bench_kill9 import start_daemon, write_config

MIB = 1024 * 1024
CHUNK = 64 * 1024


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def measure(root: Path, part_mib: int, max_bytes_mib: int, total_bytes_mib: int) -> dict[str, float]:
    async with Emulator(cert_dir=root / "certs") as emulator:
        config = write_config(root, emulator)
        with config.open("a") as out:
            out.write(f"[attachments]\nmax_bytes = {max_bytes_mib * MIB}\ntotal_bytes = {total_bytes_mib * MIB}\n")
        proc = start_daemon(root, config, "daemon")
        try:
            await emulator.wait_for_event("System.SynchronizeState", timeout=30)
            # Warm-up: a first Speak (1 MiB, complete) loads the playback and decoding code and the first
            # ExceptionEncountered path, so the baseline holds what any daemon holds after its first answer.
            warm = Directive.new(
                "SpeechSynthesizer", "Speak", {"token": "warm", "url": "cid:warm", "format": "AUDIO_MPEG"},
                dialog_request_id=None,
            )
            await emulator.push_directive(warm, {"warm": bytes(range(256)) * 4096})
            await _has_event(emulator, "System.ExceptionEncountered", 10)
            await asyncio.sleep(1.0)  # let start-up allocations settle before the baseline
            before = rss_mib(proc.pid)
            reports = sum(1 for r in emulator.records if r.qualified_name == "System.ExceptionEncountered")
            speak = Directive.new(
                "SpeechSynthesizer", "Speak", {"token": "endless", "url": "cid:endless", "format": "AUDIO_MPEG"},
                dialog_request_id=None,
            )
            await emulator.push_directive(speak)
            # Reaching into the emulator for the open downchannel: a part that never ends is not a push it has.
            conn, stream = emulator._open_downchannels()[-1]
            await conn.send_data(
                stream.stream_id,
                b"Content-Type: application/octet-stream\r\nContent-ID: <endless>\r\n\r\n",
            )
            chunk = bytes(range(256)) * (CHUNK // 256)
            peak = before
            started = time.monotonic()
            for i in range(part_mib * MIB // CHUNK):
                await conn.send_data(stream.stream_id, chunk)
                if i % 64 == 0:
                    peak = max(peak, rss_mib(proc.pid))
            seconds = time.monotonic() - started
            peak = max(peak, rss_mib(proc.pid))
            reported = await _has_event(emulator, "System.ExceptionEncountered", 10, count=reports + 1)
            after = rss_mib(proc.pid)
            # End the endless part, then one more directive on the same downchannel.
            await conn.send_data(stream.stream_id, b"\r\n--" + DOWNCHANNEL_BOUNDARY.encode() + b"\r\n")
            connects = emulator.downchannel_count
            await emulator.push_directive(Directive.new("Speaker", "SetVolume", {"volume": 42}))
            survived = await _has_event(emulator, "Speaker.VolumeChanged", 15)
            survived = survived and emulator.downchannel_count == connects and proc.poll() is None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait, 10)
    return {
        "part_mib": part_mib,
        "max_bytes_mib": max_bytes_mib,
        "rss_before_mib": before,
        "rss_peak_mib": peak,
        "rss_after_mib": after,
        "send_seconds": seconds,
        "reported": 1.0 if reported else 0.0,
        "survived": 1.0 if survived else 0.0,
    }


async def _has_event(emulator: Emulator, name: str, timeout: float, count: int = 1) -> bool:
    try:
        await emulator.wait_for_event(name, timeout=timeout, count=count)
    except TimeoutError:
        return False
    return True


def rows(m: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {"metric": "attachment_part_sent_mib", "value": m["part_mib"], "unit": "MiB", "target": "256",
         "mib_per_s": round(m["part_mib"] / max(m["send_seconds"], 1e-9), 1)},
        {"metric": "attachment_rss_before_mib", "value": round(m["rss_before_mib"], 1), "unit": "MiB", "target": "-"},
        {"metric": "attachment_rss_growth_peak_mib", "value": round(m["rss_peak_mib"] - m["rss_before_mib"], 1),
         "unit": "MiB", "target": f"~ max_bytes ({m['max_bytes_mib']} MiB), not the part"},
        {"metric": "attachment_rss_growth_after_mib", "value": round(m["rss_after_mib"] - m["rss_before_mib"], 1),
         "unit": "MiB", "target": f"~ max_bytes ({m['max_bytes_mib']} MiB), not the part"},
        {"metric": "attachment_speak_failed_reported", "value": int(m["reported"]), "unit": "bool", "target": "1"},
        {"metric": "attachment_connection_survived", "value": int(m["survived"]), "unit": "bool", "target": "1"},
    ]


def run(part_mib: int = 256) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="avsd-attmem-") as tmp:
        return rows(asyncio.run(measure(Path(tmp), part_mib, 8, 24)))


if __name__ == "__main__":
    import json

    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 256):
        print(json.dumps(row))
