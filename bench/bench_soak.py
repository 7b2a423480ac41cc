"""Fault soak: the daemon (built by the composition root exactly as ``avsd run`` builds it, minus the microphone)
against the local AVS server over real HTTP/2 + TLS, with faults of every kind the server can inject, one after
another, while direct, queued and certified events flow.

- direct: ``AvsClient.send_event`` awaited by the caller, retried by the caller after a reconnect (as an agent
  that needs an answer would do); lost = never accepted within its retries.
- queued: ``EventQueue.send`` (state events; by design dropped, with a count, when they cannot be sent, §9.2);
  unaccounted = neither accepted by the server nor counted as dropped.
- certified: the outbox (alerts' events); lost = never accepted; duplicates = accepted more than once.

Metrics: faults injected, crashes (the daemon's TaskGroup ended), reconnect time after each fault that dropped
the connection (from the moment the fault clears to CONNECTED), events lost / duplicated, RSS before and after
(the whole process: daemon and server), observer failures.

``python bench/bench_soak.py [FAULTS]`` prints the JSON rows; tests/test_soak.py runs a short version.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from avsd.avs.client import ConnectionState
from avsd.avs.credentials import Credentials, save_credentials
from avsd.avs.messages import Event
from avsd.config import Config, override
from avsd.emulator.faults import Fault, FaultKind, FaultTarget
from avsd.emulator.server import Emulator
from avsd.errors import AvsError
from avsd.observers import FAILURES
from avsd.playback.base import PlaybackSettings
from avsd.root import build_daemon

K, TG = FaultKind, FaultTarget
PING_IDLE_S = 1.0
# Every kind the server can inject, with the parameters a real outage would have (short, so 1,000 fit in minutes).
MENU: tuple[Fault, ...] = (
    Fault(K.GOAWAY),
    Fault(K.CLOSE_DOWNCHANNEL),
    Fault(K.RST_STREAM),
    Fault(K.RST_STREAM, TG.DOWNCHANNEL),
    Fault(K.STATUS, status=403),
    Fault(K.STATUS, status=429),
    Fault(K.STATUS, status=500),
    Fault(K.STATUS, status=503),
    Fault(K.STATUS, TG.PING, status=403),
    Fault(K.STATUS, TG.PING, status=500),
    Fault(K.STALL, seconds=0.3),
    Fault(K.TRICKLE, chunk_bytes=16, interval_ms=2.0),
    Fault(K.MALFORMED_MULTIPART),
    Fault(K.MALFORMED_MULTIPART, TG.DOWNCHANNEL),
    Fault(K.MALFORMED_JSON),
    Fault(K.EXPIRE_TOKENS),
    Fault(K.NO_PING_ANSWER),
    Fault(K.OFFLINE, seconds=0.3),
)


@dataclass
class SoakResult:
    faults: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    crash: str = ""
    crash_trace: str = ""
    reconnects_s: list[float] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # (seconds, fault) of the slowest reconnects
    not_reconnected: int = 0
    direct_sent: int = 0
    direct_lost: int = 0
    direct_errors: Counter[str] = field(default_factory=Counter)
    queued_sent: int = 0
    queued_dropped: int = 0
    queued_unaccounted: int = 0
    certified_sent: int = 0
    certified_lost: int = 0
    certified_refused: int = 0  # of the lost: answered 4xx/5xx by an injected fault and not retried by the outbox
    duplicates: int = 0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    observer_failures: int = 0
    seconds: float = 0.0

    @property
    def reconnect_p95_s(self) -> float:
        values = sorted(self.reconnects_s)
        if len(values) < 2:
            return values[0] if values else 0.0
        return statistics.quantiles(values, n=20)[18]

    def rows(self) -> list[dict[str, Any]]:
        def row(metric: str, value: Any, unit: str, target: str) -> dict[str, Any]:
            return {"metric": metric, "value": value, "unit": unit, "target": target}

        return [
            row("soak_faults", self.faults, "faults", ">= 1000"),
            row("soak_crashes", self.crashes, "crashes", "0"),
            row("soak_reconnect_p95_s", round(self.reconnect_p95_s, 3), "s after the fault clears", "<= 1"),
            row("soak_reconnects", len(self.reconnects_s), "reconnects", "info"),
            row("soak_not_reconnected", self.not_reconnected, "faults", "0"),
            row("soak_direct_lost", self.direct_lost, f"of {self.direct_sent}", "0"),
            row("soak_certified_lost", self.certified_lost, f"of {self.certified_sent}", "0"),
            row("soak_certified_lost_silently", self.certified_lost - self.certified_refused,
                f"of {self.certified_sent} (lost without an error answer)", "0"),
            row("soak_queued_unaccounted", self.queued_unaccounted, f"of {self.queued_sent}", "0"),
            row("soak_queued_dropped", self.queued_dropped, f"of {self.queued_sent} (by design while offline)",
                "info"),
            row("soak_duplicates", self.duplicates, "events accepted twice", "counted"),
            row("soak_rss_mb_before", round(self.rss_before_mb, 1), "MiB (daemon + server)", "info"),
            row("soak_rss_mb_after", round(self.rss_after_mb, 1), "MiB (daemon + server)", "info"),
            row("soak_observer_failures", self.observer_failures, "failures", "0"),
            row("soak_seconds", round(self.seconds, 1), "s", "info"),
        ]


def fault_name(fault: Fault) -> str:
    status = f" {fault.status}" if fault.kind is K.STATUS else ""
    return f"{fault.kind}{status} ({fault.target})"


def soak_config(emulator: Emulator, state_dir: Path, out_dir: Path) -> Config:
    config = Config()
    for key, value in (
        ("avs.endpoint", emulator.base_url),
        ("avs.ca_file", str(emulator.ca_file)),
        ("avs.backoff_s", [0.05, 0.1, 0.2]),
        ("avs.ping_idle_s", PING_IDLE_S),
        ("avs.ping_timeout_s", 0.5),
        ("avs.event_timeout_s", 5.0),
        ("daemon.state_dir", str(state_dir)),
        ("wake.engine", "none"),
    ):
        config = override(config, key, value)
    return dataclasses.replace(config, playback=PlaybackSettings(backend="wav", wav_dir=str(out_dir)))


class _Traffic:
    """The three kinds of events, each with a unique messageId, in their own tasks."""

    def __init__(self, daemon: Any, result: SoakResult, rng: random.Random) -> None:
        self.daemon = daemon
        self.result = result
        self.rng = rng
        self.direct: list[str] = []
        self.direct_lost: list[str] = []
        self.queued: list[str] = []
        self.certified: list[str] = []
        self.paused = asyncio.Event()  # set: hold traffic back (so the connection goes idle and pings)
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _direct(self, event: Event) -> None:
        last: Exception | None = None
        for _ in range(20):
            try:
                await self.daemon.client.send_event(event)
                return
            except AvsError as exc:
                last = exc
                with contextlib.suppress(TimeoutError):
                    await self.daemon.client.wait_connected(5)
                await asyncio.sleep(0.05)  # a caller's retry pause
        self.direct_lost.append(event.header.message_id)
        self.result.direct_errors[f"{type(last).__name__}: {last}"[:120]] += 1

    async def run(self) -> None:
        for n in itertools.count():
            if self.paused.is_set():
                await asyncio.sleep(0.05)
                continue
            kind = n % 3
            if kind == 0:
                event = Event.new("Speaker", "VolumeChanged", {"volume": n % 100, "muted": False})
                self.direct.append(event.header.message_id)
                self._spawn(self._direct(event))
            elif kind == 1:
                payload = {"token": f"t{n}", "offsetInMilliseconds": 0}
                event = Event.new("AudioPlayer", "PlaybackNearlyFinished", payload)
                self.queued.append(event.header.message_id)
                self.daemon.events.send(event)
            else:
                event = Event.new("Alerts", "AlertStarted", {"token": f"soak-{n}"})
                self.certified.append(event.header.message_id)
                await self.daemon.outbox.put(event.to_json())
            await asyncio.sleep(self.rng.uniform(0.005, 0.03))

    async def settle(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _reconnected(daemon: Any, states: list[tuple[float, ConnectionState]], since: float, clears: float,
                       timeout: float) -> float | None:
    """Seconds from ``clears`` until CONNECTED, if the connection dropped after ``since``; None if it never dropped.
    Raises TimeoutError if it dropped and did not come back within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        dropped = [t for t, s in states if t >= since and s is not ConnectionState.CONNECTED]
        if not dropped and loop.time() >= clears + 0.05:
            return None
        if dropped:
            back = [t for t, s in states if t >= dropped[0] and s is ConnectionState.CONNECTED]
            if back and daemon.client.state is ConnectionState.CONNECTED:
                return max(0.0, back[-1] - clears)
        if loop.time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


def _account(emulator: Emulator, accepted: Counter[str], refused: set[str], *, final: bool = False) -> None:
    """Count the server's answered events and drop their records as the soak goes, so that the RSS figures are
    the daemon's and the server's own, not this bench's bookkeeping (thousands of records with their bodies)."""
    kept = []
    for record in emulator.records:
        if not final and (record.status is None or not record.body_complete.is_set()):
            kept.append(record)  # still being answered, or answered (a fault) before its event part was read
            continue
        if record.event is not None and record.status is not None:
            message_id = record.event["event"]["header"]["messageId"]
            if record.status < 300:
                accepted[message_id] += 1
            else:
                refused.add(message_id)
    emulator.records[:] = kept


async def soak(work: Path, *, faults: int, seed: int = 1, menu: tuple[Fault, ...] = MENU) -> SoakResult:
    result = SoakResult()
    rng = random.Random(seed)
    process = psutil.Process()
    failures_before = sum(FAILURES.values())
    started = time.monotonic()
    accepted: Counter[str] = Counter()
    refused: set[str] = set()
    async with Emulator(cert_dir=work / "certs", stop_capture=False) as emulator:
        state_dir = work / "state"
        save_credentials(state_dir / "credentials.json", Credentials("avsd-soak", emulator.refresh_token))
        daemon = build_daemon(soak_config(emulator, state_dir, work / "played"), open_audio=None)
        loop = asyncio.get_running_loop()
        states: list[tuple[float, ConnectionState]] = []
        daemon.client.add_state_observer(lambda state: states.append((loop.time(), state)))
        dropped_before = 0
        task = loop.create_task(daemon.run(wait_for_connection_s=10.0), name="daemon-under-soak")
        traffic = _Traffic(daemon, result, rng)
        traffic_task: asyncio.Task[None] | None = None
        try:
            await daemon.client.wait_connected(10)
            dropped_before = daemon.events.dropped
            result.rss_before_mb = process.memory_info().rss / 2**20
            traffic_task = loop.create_task(traffic.run(), name="soak-traffic")
            order = list(menu)
            for n in range(faults):
                if task.done():
                    break
                if n % len(order) == 0:
                    rng.shuffle(order)
                fault = order[n % len(order)]
                pinged = fault.target is TG.PING
                if pinged:  # pings go out only on an idle connection
                    traffic.paused.set()
                    await traffic.settle()
                since = loop.time()
                emulator.inject(fault)
                result.faults += 1
                result.kinds[fault_name(fault)] += 1
                clears = since + (fault.seconds if fault.kind in (K.OFFLINE, K.STALL) else 0.0)
                if pinged:
                    clears = since + PING_IDLE_S + 0.6
                try:
                    took = await _reconnected(daemon, states, since, clears, timeout=clears - since + 15.0)
                except TimeoutError:
                    result.not_reconnected += 1
                    took = None
                if took is not None:
                    result.reconnects_s.append(took)
                    result.slowest = sorted([*result.slowest, (round(took, 3), fault_name(fault))], reverse=True)[:5]
                traffic.paused.clear()
                _account(emulator, accepted, refused)
                await asyncio.sleep(rng.uniform(0.02, 0.1))
            if task.done():
                result.crashes += 1
                exc = task.exception() if not task.cancelled() else None
                while isinstance(exc, BaseExceptionGroup):  # the TaskGroup's: name the task's own exception
                    exc = exc.exceptions[0]
                result.crash = f"{type(exc).__name__}: {exc}"[:300] if exc else "cancelled"
                result.crash_trace = "".join(traceback.format_exception(exc)) if exc else ""
            else:
                if traffic_task is not None:
                    traffic_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await traffic_task
                emulator.faults.armed.clear()  # what is still armed would hit the final deliveries
                await traffic.settle()
                await daemon.client.wait_connected(15)
                async with asyncio.timeout(60):
                    await daemon.outbox.drained()
                    await daemon.events.drain()
        finally:
            if traffic_task is not None and not traffic_task.done():
                traffic_task.cancel()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        _account(emulator, accepted, refused, final=True)
    result.rss_after_mb = process.memory_info().rss / 2**20
    result.direct_sent, result.direct_lost = len(traffic.direct), len(traffic.direct_lost)
    result.queued_sent = len(traffic.queued)
    result.queued_dropped = daemon.events.dropped - dropped_before
    delivered_queued = sum(1 for m in traffic.queued if accepted[m])
    result.queued_unaccounted = max(0, result.queued_sent - delivered_queued - result.queued_dropped)
    result.certified_sent = len(traffic.certified)
    result.certified_lost = sum(1 for m in traffic.certified if not accepted[m])
    result.certified_refused = sum(1 for m in traffic.certified if not accepted[m] and m in refused)
    result.duplicates = sum(n - 1 for n in accepted.values() if n > 1)
    result.observer_failures = sum(FAILURES.values()) - failures_before
    result.seconds = time.monotonic() - started
    return result


def run(faults: int = 1000) -> list[dict[str, Any]]:
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="avsd-soak-") as tmp:
        result = asyncio.run(soak(Path(tmp), faults=faults))
    rows = result.rows()
    if result.crash:
        rows.append({"metric": "soak_crash", "value": result.crash, "unit": "", "target": "none"})
    rows.append({"metric": "soak_fault_kinds", "value": len(result.kinds), "unit": json.dumps(dict(result.kinds)),
                 "target": f"{len(MENU)}"})
    return rows


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    os.nice(0)
    for r in run(count):
        print(json.dumps(r), flush=True)
