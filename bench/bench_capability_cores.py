"""Benchmarks for the capability-layer cores: focus, sequencer, alert schedule/store, outbox, playlists.

Targets are for the development machine; a Raspberry Pi core is roughly 10-20x slower, and an SD card's fsync
is far slower than a PC's disk (the durable-put rows measure the local disk of ``tempfile.gettempdir()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

from avsd.agents.alert_schedule import Alert, AlertType, plan
from avsd.agents.alert_store import AlertStore
from avsd.agents.outbox import Outbox, OutboxSettings
from avsd.agents.sequencer import DirectiveSequencer
from avsd.avs.messages import Directive, Event
from avsd.focus import Channel, FocusManager
from avsd.playback.playlists import parse_playlist


def _focus() -> dict[str, object]:
    fm = FocusManager()
    n = 50_000
    t0 = time.perf_counter()
    for _ in range(n):
        fm.acquire(Channel.CONTENT, "music")
        fm.acquire(Channel.DIALOG, "speech")
        fm.release(Channel.DIALOG, "speech")
        fm.release(Channel.CONTENT, "music")
    rate = 4 * n / (time.perf_counter() - t0)
    return {"metric": "focus_ops_per_s", "value": round(rate), "unit": "ops/s", "target": ">= 100000"}


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    def handles(self) -> Collection[tuple[str, str]]:
        return [("Speaker", "SetVolume"), ("SpeechSynthesizer", "Speak")]

    def blocking(self, directive: Directive) -> bool:
        return directive.name == "Speak"

    async def handle(self, directive: Directive) -> None:
        self.count += 1

    async def cancel(self, directive: Directive) -> None:
        return None


async def _sequencer_rate() -> float:
    async def on_exception(event: Event) -> None:
        return None

    seq = DirectiveSequencer(on_exception)
    sink = _Sink()
    seq.register(sink)
    task = asyncio.create_task(seq.run())
    await seq.new_dialog("d1")
    n = 20_000
    t0 = time.perf_counter()
    for i in range(0, n, 50):
        for j in range(50):
            name = "Speak" if j % 5 == 0 else "SetVolume"
            seq.submit(Directive.new("SpeechSynthesizer" if name == "Speak" else "Speaker", name,
                                     dialog_request_id="d1" if j % 2 else None, message_id=f"m{i + j}"))
        await seq.idle()
    elapsed = time.perf_counter() - t0
    await seq.close()
    await task
    assert sink.count == n
    return n / elapsed


def _alert_plan() -> dict[str, object]:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    alerts = [Alert(f"t{i}", AlertType.ALARM, now + timedelta(minutes=i - 500)) for i in range(1000)]
    runs = 200
    t0 = time.perf_counter()
    for _ in range(runs):
        plan(alerts, now)
    ms = (time.perf_counter() - t0) / runs * 1000
    return {"metric": "alert_plan_1000_alerts_ms", "value": round(ms, 3), "unit": "ms", "target": "<= 10"}


async def _durable_puts(tmp: Path) -> tuple[float, float, float]:
    store = AlertStore(tmp / "alerts.db")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    lat: list[float] = []
    for i in range(200):
        t0 = time.perf_counter()
        await store.put(Alert(f"t{i}", AlertType.TIMER, now + timedelta(seconds=i)))
        lat.append((time.perf_counter() - t0) * 1000)
    store.close()

    delivered = 0

    async def send(body: bytes) -> None:
        nonlocal delivered
        delivered += 1

    box = Outbox(tmp / "outbox.db", send, OutboxSettings(max_entries=1000), connected=False)
    put_lat: list[float] = []
    n = 300
    for i in range(n):
        t0 = time.perf_counter()
        await box.put(b'{"event":{"header":{"namespace":"Alerts","name":"AlertStarted"},"n":%d}}' % i)
        put_lat.append((time.perf_counter() - t0) * 1000)
    runner = asyncio.create_task(box.run())
    t0 = time.perf_counter()
    box.set_connected(True)
    await box.drained()
    rate = n / (time.perf_counter() - t0)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    box.close()
    assert delivered == n
    return statistics.median(lat), statistics.median(put_lat), rate


def _playlists() -> list[dict[str, object]]:
    pls = "[playlist]\n" + "".join(
        f"File{i}=http://mirror{i}.example.com/s?x={i}\nTitle{i}=Mirror {i}\n" for i in range(5000, 0, -1)
    )
    m3u = "#EXTM3U\n" + "".join(f"#EXTINF:-1,Station {i}\nhttp://s{i}.example.com/a\n" for i in range(5000))
    # Relative entries go through urllib's urljoin: rare in radio playlists, and ~10x slower.
    rel = "#EXTM3U\n" + "".join(f"#EXTINF:-1,Station {i}\nrelative/stream{i}.mp3\n" for i in range(5000))
    rows: list[dict[str, object]] = []
    samples = (
        ("pls", pls.encode(), "audio/x-scpls", ">= 5"),
        ("m3u", m3u.encode(), "audio/x-mpegurl", ">= 5"),
        ("m3u_relative", rel.encode(), "audio/x-mpegurl", ">= 1"),
    )
    for name, body, ctype, target in samples:
        runs = 20
        t0 = time.perf_counter()
        for _ in range(runs):
            urls = parse_playlist(body, ctype, "http://radio.example.org/lists/x")
        elapsed = time.perf_counter() - t0
        assert len(urls) == 5000
        mb_per_s = len(body) * runs / elapsed / 1e6
        rows.append({"metric": f"playlist_parse_{name}_mb_per_s", "value": round(mb_per_s, 1), "unit": "MB/s",
                     "target": target})
    return rows


def run() -> list[dict[str, object]]:
    rows = [_focus()]
    rate = asyncio.run(_sequencer_rate())
    rows.append({"metric": "sequencer_directives_per_s", "value": round(rate), "unit": "directives/s",
                 "target": ">= 5000"})
    rows.append(_alert_plan())
    with tempfile.TemporaryDirectory() as tmp:
        store_ms, outbox_ms, delivery = asyncio.run(_durable_puts(Path(tmp)))
    rows.append({"metric": "alert_store_put_p50_ms", "value": round(store_ms, 2), "unit": "ms",
                 "target": "<= 20 (fsync-bound)"})
    rows.append({"metric": "outbox_put_p50_ms", "value": round(outbox_ms, 2), "unit": "ms",
                 "target": "<= 20 (fsync-bound)"})
    rows.append({"metric": "outbox_delivery_events_per_s", "value": round(delivery), "unit": "events/s",
                 "target": ">= 50"})
    rows.extend(_playlists())
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
