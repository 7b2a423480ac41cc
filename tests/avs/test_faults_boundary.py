"""Faults at the HTTP boundary (issue 8, defect 1): GOAWAY with events queued, 403 on ping.

Real TLS + HTTP/2 against the emulator on loopback; the faults are the emulator's own fault injection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from avsd.agents.events import EventQueue
from avsd.avs.client import ConnectionState
from avsd.avs.messages import Event
from avsd.emulator.faults import Fault, FaultKind, FaultTarget
from avsd.emulator.server import Emulator
from avsd.errors import AvsError, AvsServerError, NotConnectedError
from tests.avs.conftest import Device, connected_device

QUEUED = 20
ROUNDS = 10


def _volume_event(n: int) -> Event:
    return Event.new("Speaker", "VolumeChanged", {"volume": n % 100, "muted": False, "seq": n})


@pytest.mark.timeout(120)
async def test_goaway_with_twenty_queued_events_never_ends_the_queue_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Before the fix 2 of these 10 rounds raised httpx.StreamConsumed out of EventQueue.run (seeded delays)."""
    delays = random.Random(1)
    async with (
        Emulator(cert_dir=tmp_path / "certs", goaway_grace_s=0.05) as emulator,
        connected_device(tmp_path, emulator) as device,
    ):
        queue = EventQueue(device.client.send_event)
        worker = asyncio.create_task(queue.run(), name="event-queue")
        sent: list[int] = []
        direct: list[asyncio.Task[object]] = []
        for round_ in range(ROUNDS):
            await device.connected_times(round_ + 1, timeout=15)
            for i in range(QUEUED):
                n = round_ * QUEUED + i
                sent.append(n)
                queue.send(_volume_event(n))
            # The same events sent concurrently, as the outbox and the agents do.
            for i in range(QUEUED):
                n = 10_000 + round_ * QUEUED + i
                sent.append(n)
                direct.append(asyncio.create_task(device.client.send_event(_volume_event(n))))
            await asyncio.sleep(delays.random() * 0.02)
            emulator.inject(Fault(FaultKind.GOAWAY))
            async with asyncio.timeout(40):
                await queue.drain()
                await asyncio.wait(direct)
            assert not worker.done(), f"event queue ended in round {round_}: {worker!r}"
        await device.connected_times(ROUNDS + 1, timeout=15)
        worker.cancel()
        failed = 0
        for task in direct:
            error = task.exception()
            assert error is None or isinstance(error, AvsError), f"{type(error).__name__} escaped: {error}"
            failed += error is not None
        received = {
            r.event["event"]["payload"]["seq"]
            for r in emulator.records
            if r.qualified_name == "Speaker.VolumeChanged" and r.event is not None
        }
        # Every event either reached the server or failed through avsd's error tree; none vanished.
        assert len(received) + queue.dropped + failed >= len(sent)
        assert len(received) >= len(sent) // 2, f"only {len(received)} of {len(sent)} events got through"


@pytest.mark.timeout(60)
async def test_ping_answered_403_invalidates_the_token_and_reconnects(tmp_path: Path) -> None:
    async with (
        Emulator(cert_dir=tmp_path / "certs") as emulator,
        connected_device(tmp_path, emulator) as device,
    ):
        before = device.tokens.refresh_count
        emulator.inject(Fault(FaultKind.STATUS, FaultTarget.PING, status=403))
        with pytest.raises(AvsServerError) as raised:
            await device.client.ping()
        assert raised.value.status == 403
        await device.connected_times(2, timeout=10)
        assert device.tokens.refresh_count == before + 1


async def _states_until(
    device: Device, done: Callable[[list[ConnectionState]], bool], timeout: float
) -> list[ConnectionState]:
    """Wait (on state changes, no polling) until ``done(device.states)``."""
    changed = asyncio.Event()
    device.client.add_state_observer(lambda _state: changed.set())
    async with asyncio.timeout(timeout):
        while not done(device.states):
            changed.clear()
            await changed.wait()
    return device.states


@pytest.mark.timeout(30)
async def test_refresh_outage_is_offline_and_retried_not_a_refused_login(
    tmp_path: Path, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # LWA on a port nothing listens on: a real connection refusal, as when the network or LWA is down.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    caplog.set_level(logging.INFO)
    async with connected_device(
        tmp_path, emulator, start=False, token_url=f"https://127.0.0.1:{dead_port}/auth/o2/token"
    ) as device:
        device.task = asyncio.create_task(device.client.run())
        # The supervisor keeps trying: waiting, then connecting again, three times.
        await _states_until(device, lambda states: states.count(ConnectionState.CONNECTING) >= 3, 10)
        assert ConnectionState.WAITING_TO_RETRY in device.states
        assert ConnectionState.AUTH_FAILED not in device.states
        assert "unreachable" in device.client.last_error
    text = caplog.text
    assert "avsd login" not in text
    assert "offline, retrying" in text


@pytest.mark.timeout(30)
async def test_refused_refresh_token_says_run_avsd_login(
    tmp_path: Path, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with connected_device(tmp_path, emulator, start=False, refresh_token="Atzr|revoked") as device:
        device.task = asyncio.create_task(device.client.run())
        await _states_until(device, lambda states: ConnectionState.AUTH_FAILED in states, 10)
        assert "invalid_grant" in device.client.last_error
    assert "run `avsd login`" in caplog.text


@pytest.mark.timeout(30)
async def test_lwa_outage_while_sending_is_an_avs_error_and_the_queue_survives(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Found by the fault soak: an AuthUnavailableError (not an AvsError) from the token refresh inside
    send_event ended EventQueue.run, and with it the daemon's TaskGroup."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with connected_device(tmp_path, emulator) as device:
        device.tokens._token_url = f"https://127.0.0.1:{dead_port}/auth/o2/token"  # LWA goes away
        device.tokens.invalidate(await device.tokens.get_token())  # and the token must be refreshed
        queue = EventQueue(device.client.send_event)
        worker = asyncio.create_task(queue.run())
        queue.send(_volume_event(1))
        queue.send(_volume_event(2))
        async with asyncio.timeout(10):
            await queue.drain()
        assert not worker.done()
        assert queue.dropped == 2
        with pytest.raises(NotConnectedError, match="no access token"):
            await device.client.send_event(_volume_event(3))
        worker.cancel()
