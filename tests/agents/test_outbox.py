"""Certified outbox on real SQLite files with a scripted fake sender."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from avsd.agents.outbox import Outbox, OutboxError, OutboxSettings
from avsd.errors import (
    AuthUnavailableError,
    AvsConnectionError,
    AvsProtocolError,
    AvsServerError,
    NotConnectedError,
)

LIMIT = 10.0
FAST = OutboxSettings(retry_initial_s=0.005, retry_max_s=0.02)


class FakeSender:
    """Plays a script: each attempt pops the next outcome (an exception to raise, or None for 204).
    When the script is empty every send succeeds. ``hang`` makes sends wait forever."""

    def __init__(self, script: Iterable[BaseException | None] = (), hang: bool = False) -> None:
        self.script = list(script)
        self.attempts: list[bytes] = []
        self.delivered: list[bytes] = []  # sends that returned normally (2xx)
        self.hang = hang

    async def __call__(self, body: bytes) -> None:
        self.attempts.append(body)
        if self.hang:
            await asyncio.Event().wait()
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.delivered.append(body)


@asynccontextmanager
async def running(box: Outbox) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(box.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def ev(i: int) -> bytes:
    return f'{{"event":{{"n":{i}}}}}'.encode()


async def test_put_is_durable_and_reopen_keeps_order(tmp_path: Path) -> None:
    async with asyncio.timeout(LIMIT):
        box = Outbox(tmp_path / "outbox.db", FakeSender())
        for i in range(3):
            await box.put(ev(i))
        box.close()
        again = Outbox(tmp_path / "outbox.db", FakeSender())
        assert again.pending() == [ev(0), ev(1), ev(2)]
        again.close()
    with pytest.raises(OutboxError, match="closed"):
        await again.put(ev(9))


@pytest.mark.parametrize(
    "failure",
    [NotConnectedError("offline"), AvsConnectionError("GOAWAY"), AvsProtocolError("junk"),
     AuthUnavailableError("lwa down"), AvsServerError(403, "UNAUTHORIZED_REQUEST_EXCEPTION"),
     RuntimeError("bug in the client")],
    ids=lambda e: type(e).__name__ + str(getattr(e, "status", "")),
)
async def test_transport_failures_are_retried_then_delivered_once_in_order(
    tmp_path: Path, failure: Exception
) -> None:
    sender = FakeSender([failure, failure, failure])
    box = Outbox(tmp_path / "o.db", sender, FAST, rng=random.Random(1))
    async with asyncio.timeout(LIMIT), running(box):
        for i in range(4):
            await box.put(ev(i))
        await box.drained()
    assert sender.delivered == [ev(0), ev(1), ev(2), ev(3)]
    assert sender.attempts == [ev(0)] * 4 + [ev(1), ev(2), ev(3)]
    assert box.acknowledged == 4
    box.close()
    assert Outbox(tmp_path / "o.db", sender).pending() == []


@pytest.mark.parametrize("status", [400, 429, 500, 503])
async def test_server_answers_acknowledge_and_delete(tmp_path: Path, status: int) -> None:
    sender = FakeSender([AvsServerError(status, "SOME_EXCEPTION")])
    box = Outbox(tmp_path / "o.db", sender, FAST)
    async with asyncio.timeout(LIMIT), running(box):
        await box.put(ev(0))
        await box.put(ev(1))
        await box.drained()
    assert sender.attempts == [ev(0), ev(1)]  # the event AVS answered with an error is not sent again
    assert sender.delivered == [ev(1)]
    assert box.acknowledged == 2


async def test_delivery_waits_for_connection_and_resumes_on_reconnect(tmp_path: Path) -> None:
    sender = FakeSender()
    # Back-off so long that only a reconnect can end it within the test's time limit.
    slow = OutboxSettings(retry_initial_s=30, retry_max_s=60)
    box = Outbox(tmp_path / "o.db", sender, slow, connected=False)
    async with asyncio.timeout(LIMIT), running(box):
        await box.put(ev(0))
        await asyncio.sleep(0.05)
        assert sender.attempts == []
        box.set_connected(True)
        await box.drained()
        assert sender.delivered == [ev(0)]
        # A failure starts a 15-30 s back-off; set_connected(True) cuts it short.
        sender.script = [NotConnectedError("dropped")]
        box.set_connected(False)
        await box.put(ev(1))
        box.set_connected(True)
        while len(sender.attempts) < 2:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)
        assert len(box) == 1
        box.set_connected(True)
        await box.drained()
    assert sender.delivered == [ev(0), ev(1)]


async def test_undelivered_entries_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    down = FakeSender([NotConnectedError("x")] * 1000)
    box = Outbox(path, down, FAST)
    async with asyncio.timeout(LIMIT):
        async with running(box):
            for i in range(5):
                await box.put(ev(i))
            while len(down.attempts) < 3:
                await asyncio.sleep(0.001)
        box.close()
        up = FakeSender()
        box2 = Outbox(path, up, FAST)
        async with running(box2):
            await box2.put(ev(5))
            await box2.drained()
    assert up.delivered == [ev(i) for i in range(6)]
    assert set(down.attempts) == {ev(0)}


async def test_cancel_during_send_keeps_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    hanging = FakeSender(hang=True)
    box = Outbox(path, hanging, FAST)
    async with asyncio.timeout(LIMIT):
        async with running(box):
            await box.put(ev(0))
            while not hanging.attempts:
                await asyncio.sleep(0.001)
        box.close()
    assert Outbox(path, FakeSender()).pending() == [ev(0)]


async def test_full_outbox_drops_the_oldest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", FakeSender(), OutboxSettings(max_entries=3), connected=False)
    async with asyncio.timeout(LIMIT):
        for i in range(5):
            await box.put(ev(i))
    assert box.pending() == [ev(2), ev(3), ev(4)]
    box.close()
    assert Outbox(tmp_path / "o.db", FakeSender()).pending() == [ev(2), ev(3), ev(4)]


async def test_concurrent_puts_keep_commit_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", FakeSender(), connected=False)
    async with asyncio.timeout(LIMIT):
        await asyncio.gather(*(box.put(ev(i)) for i in range(20)))
    mirror = box.pending()
    box.close()
    assert Outbox(tmp_path / "o.db", FakeSender()).pending() == mirror
    assert sorted(mirror) == sorted(ev(i) for i in range(20))


WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from avsd.agents.outbox import Outbox

    async def send(body: bytes) -> None:
        raise AssertionError("not connected in this test")

    async def main() -> None:
        box = Outbox(sys.argv[1], send, connected=False)
        await box.put(b'{"event":"AlertStarted"}')
        print("stored", flush=True)
        time.sleep(60)

    asyncio.run(main())
    """
)


def test_put_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "stored"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=LIMIT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Outbox(path, FakeSender()).pending() == [b'{"event":"AlertStarted"}']
