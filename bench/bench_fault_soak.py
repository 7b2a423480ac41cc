"""Client-level fault soak (issue 8): the AVS client, event queue and certified outbox alone against the local
server, with the PRODUCTION reconnect back-off, while the server injects every kind of fault it knows
(avsd/emulator/faults.py), one after the other. bench/bench_soak.py soaks the whole root-built daemon with a
shortened back-off table; this one shows the reconnect time a device really has, and accounts every event by
messageId at the HTTP boundary (answered 2xx, or its sender was told through avsd's error tree).

The emulator runs on its own loop in a second thread, as a remote server would. Each round queues ordinary events
(EventQueue), sends events directly (AvsClient.send_event, answered 200 with a directive so that body faults have
a body to break) and puts one certified event in the SQLite outbox, then injects the next fault and waits until
the traffic has settled and the client is connected again.

Client settings: the production reconnect table (0.25, 1, 3, 5, 10, 20 s, x0.66-1.5 jitter) with the back-off
reset by every successful connection (``stable_after_s = 0``, as the SDK does); ping after 1 s idle with a 0.5 s
timeout, so ping faults are met within a round.

Metrics (JSON lines, bench/run.py conventions):
- client_soak_faults_injected, client_soak_fault_kinds: faults injected and distinct kinds (of the emulator's 11)
- client_soak_crashes: client/queue/outbox tasks that ended, or exceptions outside avsd's error tree (target 0)
- client_soak_reconnect_p95_s: fault cleared (injected; for OFFLINE its end) -> CONNECTED again, for faults that
  disconnected (target <= 1 s)
- client_soak_events_lost: events neither answered 2xx by the server nor reported failed to their sender (target 0)
- client_soak_certified_lost: certified events never received by the server (target 0: the outbox retries)
- client_soak_events_failed_reported: ordinary events that failed through avsd's error tree (their sender was told)
- client_soak_duplicates: messageIds the server received more than once (resends after GOAWAY, outbox retries)
- client_soak_rss_mib_before / _after: resident memory of the process (client + server thread) before and after

Usage: python bench/bench_fault_soak.py [FAULTS]   (default 1,100; tests run a short version)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from avsd.agents.alerts import event_from_json
from avsd.agents.events import EventQueue
from avsd.agents.outbox import Outbox
from avsd.avs.attachments import AttachmentStore
from avsd.avs.auth import TokenProvider
from avsd.avs.backoff import RECONNECT_TABLE_S
from avsd.avs.client import AvsClient, ConnectionSettings, ConnectionState, make_ssl_context
from avsd.avs.context import ContextRegistry
from avsd.avs.credentials import Credentials, save_credentials
from avsd.avs.http import HttpClient
from avsd.avs.messages import Event
from avsd.emulator.faults import Fault, FaultKind, FaultTarget
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.errors import AvsdError

sys.path.insert(0, str(Path(__file__).parent))
from _common import EmulatorThread, p95

QUEUED_PER_ROUND = 3
DIRECT_PER_ROUND = 2
SETTLE_S = 30.0
DEBUG = bool(__import__("os").environ.get("SOAK_DEBUG"))
DIRECT_EVENT = ("Soak", "Ask")  # answered 200 + a SetVolume directive by the rule below

# (name, faults to inject in order, whether the round must wait for a ping)
Variant = tuple[str, tuple[Fault, ...], bool]
VARIANTS: tuple[Variant, ...] = (
    ("close_downchannel", (Fault(FaultKind.CLOSE_DOWNCHANNEL),), False),
    ("goaway", (Fault(FaultKind.GOAWAY),), False),
    ("rst_stream_event", (Fault(FaultKind.RST_STREAM),), False),
    ("rst_stream_downchannel", (Fault(FaultKind.RST_STREAM, FaultTarget.DOWNCHANNEL),), False),
    ("status_event_500", (Fault(FaultKind.STATUS, status=500),), False),
    ("status_event_503", (Fault(FaultKind.STATUS, status=503),), False),
    ("status_event_429", (Fault(FaultKind.STATUS, status=429),), False),
    ("status_event_403", (Fault(FaultKind.STATUS, status=403),), False),
    ("status_downchannel_500", (Fault(FaultKind.STATUS, FaultTarget.DOWNCHANNEL, status=500),
                                Fault(FaultKind.CLOSE_DOWNCHANNEL)), False),
    ("status_ping_403", (Fault(FaultKind.STATUS, FaultTarget.PING, status=403),), True),
    ("status_ping_500", (Fault(FaultKind.STATUS, FaultTarget.PING, status=500),), True),
    ("no_ping_answer", (Fault(FaultKind.NO_PING_ANSWER, FaultTarget.PING),), True),
    ("stall", (Fault(FaultKind.STALL, seconds=0.3),), False),
    ("trickle", (Fault(FaultKind.TRICKLE, chunk_bytes=64, interval_ms=5, match="Soak.Ask"),), False),
    ("malformed_multipart", (Fault(FaultKind.MALFORMED_MULTIPART, match="Soak.Ask"),), False),
    ("malformed_json", (Fault(FaultKind.MALFORMED_JSON, match="Soak.Ask"),), False),
    ("expire_tokens", (Fault(FaultKind.EXPIRE_TOKENS),), False),
    ("offline", (Fault(FaultKind.OFFLINE, seconds=0.3),), False),
)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Tally:
    """What happened to every event. (A plain class: bench/run.py loads benches without registering them in
    sys.modules, which dataclasses need.)"""

    def __init__(self) -> None:
        self.sent: dict[str, str] = {}  # messageId -> "queued" | "direct" | "certified"
        self.failed_reported: Counter[str] = Counter()
        self.failed_ids: set[str] = set()
        self.crashes: list[str] = []
        self.stuck: list[str] = []  # rounds that did not settle within SETTLE_S
        self.states: list[tuple[float, ConnectionState]] = []
        self.received: Counter[str] = Counter()  # messageId -> times the server got it
        self.answered_ok: set[str] = set()


@contextlib.asynccontextmanager
async def device(emulator_thread: EmulatorThread, tmp: Path, tally: Tally) -> AsyncIterator[
    tuple[AvsClient, EventQueue, Outbox]
]:
    emulator = emulator_thread.emulator
    credentials = tmp / "credentials.json"
    save_credentials(credentials, Credentials("soak", emulator.refresh_token))
    ssl_context = make_ssl_context(str(emulator.ca_file))
    settings = replace(
        ConnectionSettings(),
        endpoint=emulator.base_url,
        backoff_s=RECONNECT_TABLE_S,
        stable_after_s=0.0,
        ping_idle_s=1.0,
        ping_timeout_s=0.5,
        event_timeout_s=10.0,
        connect_timeout_s=5.0,
    )
    async with HttpClient(ssl_context=ssl_context) as http:
        tokens = TokenProvider(token_url=emulator.base_url + "/auth/o2/token", credentials_path=credentials, http=http)
        client = AvsClient(
            settings,
            tokens,
            context=ContextRegistry(),
            on_directive=lambda _d: None,
            attachments=AttachmentStore(),
            ssl_context=ssl_context,
        )

        async def tracked_send(event: Event) -> object:
            try:
                return await client.send_event(event)
            except AvsdError as exc:
                tally.failed_reported[type(exc).__name__] += 1
                tally.failed_ids.add(event.header.message_id)
                raise

        queue = EventQueue(tracked_send, max_queued=1024)
        outbox = Outbox(tmp / "outbox.sqlite", lambda body: client.send_event(event_from_json(body)), connected=False)

        def on_state(state: ConnectionState) -> None:
            tally.states.append((time.monotonic(), state))
            outbox.set_connected(state is ConnectionState.CONNECTED)

        client.add_state_observer(on_state)
        tasks = [
            asyncio.create_task(client.run(), name="client"),
            asyncio.create_task(queue.run(), name="queue"),
            asyncio.create_task(outbox.run(), name="outbox"),
        ]
        try:
            await client.wait_connected(10)
            yield client, queue, outbox
        finally:
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    tally.crashes.append(f"{task.get_name()}: {task.exception()!r}")
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            outbox.close()


def harvest(emulator_thread: EmulatorThread, tally: Tally) -> None:
    """Count what the server received and answered, then drop its records (they would grow RSS)."""

    async def take() -> list[Any]:
        records = list(emulator_thread.emulator.records)
        emulator_thread.emulator.records.clear()
        return records

    for record in emulator_thread.call(take):
        if record.event is None:
            continue
        message_id = record.event.get("event", {}).get("header", {}).get("messageId")
        if message_id in tally.sent:
            tally.received[message_id] += 1
            if record.status is not None and 200 <= record.status < 300:
                tally.answered_ok.add(message_id)


async def wait_state(client: AvsClient, timeout: float) -> bool:
    try:
        await client.wait_connected(timeout)
        return True
    except TimeoutError:
        return False


async def soak(emulator_thread: EmulatorThread, tmp: Path, faults: int) -> list[dict[str, Any]]:
    emulator = emulator_thread.emulator
    emulator_thread.call(_add_rules(emulator_thread))
    tally = Tally()
    clears: list[tuple[float, int]] = []  # (fault cleared at, index into tally.states at injection)
    injected = 0
    kinds: set[FaultKind] = set()
    rounds = 0
    names: list[str] = []
    async with device(emulator_thread, tmp, tally) as (client, queue, outbox):
        rss_before = rss_mib()
        direct_tasks: list[asyncio.Task[Any]] = []
        while injected < faults:
            name, variant_faults, needs_ping = VARIANTS[rounds % len(VARIANTS)]
            rounds += 1
            for _ in range(QUEUED_PER_ROUND):
                event = Event.new("Speaker", "VolumeChanged", {"volume": rounds % 100, "muted": False})
                tally.sent[event.header.message_id] = "queued"
                queue.send(event)
            certified = Event.new("Alerts", "AlertStopped", {"token": f"soak-{rounds}"})
            tally.sent[certified.header.message_id] = "certified"
            await outbox.put(certified.to_json())
            for _ in range(DIRECT_PER_ROUND):
                event = Event.new(*DIRECT_EVENT, {"round": rounds})
                tally.sent[event.header.message_id] = "direct"
                direct_tasks.append(asyncio.create_task(_direct(client, event, tally)))
            mark = len(tally.states)
            for fault in variant_faults:
                emulator_thread.loop.call_soon_threadsafe(emulator.inject, fault)
                injected += 1
                kinds.add(fault.kind)
            cleared = time.monotonic() + (variant_faults[-1].seconds if variant_faults[-1].kind is FaultKind.OFFLINE
                                          else 0.0)
            clears.append((cleared, mark))
            names.append(name)
            if needs_ping:
                # The client pings after 1 s without traffic; wait for that ping to meet the fault.
                await asyncio.sleep(0)
                await _wait_for_ping(emulator_thread)
            settle_started = time.monotonic()
            try:
                async with asyncio.timeout(SETTLE_S):
                    await queue.drain()
                    if direct_tasks:
                        await asyncio.wait(direct_tasks)
                    await outbox.drained()
                    await client.wait_connected()
            except TimeoutError:
                tally.stuck.append(f"{name}: queue {queue._queue.qsize()} outbox {len(outbox)} {client.state}")
                if DEBUG:
                    for task in asyncio.all_tasks():
                        if task is not asyncio.current_task():
                            task.print_stack(file=sys.stderr)
            if DEBUG:
                print(f"# round {rounds} {name} settled in {time.monotonic() - settle_started:.2f}s", file=sys.stderr)
            direct_tasks = [t for t in direct_tasks if not t.done()]
            if rounds % 20 == 0:
                harvest(emulator_thread, tally)
        # Everything settles; the certified outbox must be empty.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_S):
                await queue.drain()
                await outbox.drained()
        if direct_tasks:
            await asyncio.wait(direct_tasks, timeout=SETTLE_S)
        await asyncio.sleep(0.2)  # let the last answers reach the server's records
        harvest(emulator_thread, tally)
        rss_after = rss_mib()
        pending_certified = len(outbox)
    reconnects = _reconnect_times(tally.states, clears)
    # Ordinary events: answered 2xx, or their sender was told (avsd error). Certified ones: received by the server
    # (the outbox acknowledges any server answer, as the SDK does: a 500 is not retried).
    lost = [
        m
        for m, how in tally.sent.items()
        if (how == "certified" and tally.received[m] == 0)
        or (how != "certified" and m not in tally.answered_ok and m not in tally.failed_ids)
    ]
    certified_lost = [m for m, how in tally.sent.items() if how == "certified" and tally.received[m] == 0]
    if DEBUG:
        for n, name in enumerate(names):
            window = tally.states[clears[n][1] : clears[n + 1][1] if n + 1 < len(clears) else None]
            slow = [t for t in _reconnect_times(tally.states, clears[n : n + 2])[:1] if t > 0.8]
            if slow:
                base = clears[n][0]
                print(f"# slow {name}: {slow} {[(round(t - base, 3), s.value) for t, s in window]}", file=sys.stderr)
        for m in lost:
            print(f"# lost {tally.sent[m]} {m} received {tally.received[m]}", file=sys.stderr)
    duplicates = sum(n - 1 for n in tally.received.values() if n > 1)
    return [
        {"metric": "client_soak_faults_injected", "value": injected, "unit": "faults", "target": ">= 1000"},
        {"metric": "client_soak_fault_kinds", "value": len(kinds), "unit": f"of {len(FaultKind)} kinds",
         "target": str(len(FaultKind))},
        {"metric": "client_soak_events_sent", "value": len(tally.sent), "unit": "events", "target": "info"},
        {"metric": "client_soak_crashes", "value": len(tally.crashes), "unit": "crashes", "target": "0",
         "detail": tally.crashes[:5]},
        {"metric": "client_soak_rounds_not_settled", "value": len(tally.stuck), "unit": "rounds", "target": "0",
         "detail": tally.stuck[:5]},
        {"metric": "client_soak_reconnects", "value": len(reconnects), "unit": "reconnects", "target": "info"},
        {"metric": "client_soak_reconnect_p95_s", "value": round(p95(reconnects), 3) if len(reconnects) > 1 else None,
         "unit": "s", "target": "<= 1"},
        {"metric": "client_soak_events_lost", "value": len(lost), "unit": "events", "target": "0",
         "detail": lost[:5]},
        {"metric": "client_soak_certified_lost", "value": len(certified_lost) + pending_certified, "unit": "events",
         "target": "0"},
        {"metric": "client_soak_events_failed_reported", "value": sum(tally.failed_reported.values()), "unit": "events",
         "target": "info", "detail": dict(tally.failed_reported)},
        {"metric": "client_soak_duplicates", "value": duplicates, "unit": "events", "target": "counted"},
        {"metric": "client_soak_rss_mib_before", "value": round(rss_before, 1), "unit": "MiB", "target": "info"},
        {"metric": "client_soak_rss_mib_after", "value": round(rss_after, 1), "unit": "MiB", "target": "info"},
    ]


def _add_rules(emulator_thread: EmulatorThread) -> Callable[[], Any]:
    async def add() -> None:
        emulator_thread.emulator.add_rule(
            Rule(match=".".join(DIRECT_EVENT), directives=(DirectiveSpec("Speaker", "SetVolume", {"volume": 10}),))
        )

    return add


async def _direct(client: AvsClient, event: Event, tally: Tally) -> None:
    try:
        await client.send_event(event)
    except AvsdError as exc:
        tally.failed_reported[type(exc).__name__] += 1
        tally.failed_ids.add(event.header.message_id)
    except Exception as exc:  # outside avsd's error tree: the defect this soak exists to catch
        tally.crashes.append(f"send_event: {type(exc).__name__}: {exc}")


async def _wait_for_ping(emulator_thread: EmulatorThread) -> None:
    records = emulator_thread.emulator.records
    start = len(records)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while not any(r.path == "/ping" for r in records[start:]):  # noqa: ASYNC110 - another thread's list
                await asyncio.sleep(0.05)


def _reconnect_times(states: list[tuple[float, ConnectionState]], clears: list[tuple[float, int]]) -> list[float]:
    """For each fault that took the client out of CONNECTED: the later of the fault's end and the moment the client
    noticed it -> the next CONNECTED."""
    times: list[float] = []
    for n, (cleared, mark) in enumerate(clears):
        end = clears[n + 1][1] if n + 1 < len(clears) else len(states)
        after = states[mark:end]
        left = next((i for i, (_, s) in enumerate(after) if s is not ConnectionState.CONNECTED), None)
        if left is None:
            continue
        # A ping fault shows only when the ping is due: measure from when the client noticed (left CONNECTED).
        noticed = after[left][0]
        back = next((t for t, s in after[left:] if s is ConnectionState.CONNECTED), None)
        if back is not None:
            times.append(max(0.0, back - max(cleared, noticed)))
    return times


def run(faults: int = 1100) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        emulator_thread = EmulatorThread(Path(tmp) / "certs", recognize_204=True, goaway_grace_s=0.2)
        with emulator_thread:
            return asyncio.run(soak(emulator_thread, Path(tmp), faults))


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 1100):
        print(json.dumps(row))
