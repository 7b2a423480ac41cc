"""A certified alert event keeps its messageId across restarts (issue 8 defect 6).

Reproducer: the daemon killed while an alert rang sent AlertStarted twice, with two messageIds, once from each
process (4 of 6 trials). Here each "process" is a fresh AlertsAgent + Outbox + AlertStore on the same files,
and the previous one is abandoned without a clean shutdown (what ``kill -9`` leaves behind). The real-process
version is tests/test_alarm_kill9.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avsd.agents.alert_schedule import Alert, AlertType
from avsd.agents.alert_store import AlertStore
from avsd.agents.alerts import AlertsAgent, AlertsSettings, ring_message_id
from avsd.agents.outbox import Outbox, OutboxSettings
from avsd.avs.messages import Event
from avsd.playback.pcm import WavSinkPlayer

LIMIT = 40.0
FAST = OutboxSettings(retry_initial_s=0.005, retry_max_s=0.02)


class Sender:
    """What AVS received, as (name, messageId)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []

    async def __call__(self, body: bytes) -> None:
        header = json.loads(body)["event"]["header"]
        self.received.append((header["name"], header["messageId"]))


class NoEvents:
    def send(self, event: Event) -> None:
        pass


@dataclass
class Process:
    agent: AlertsAgent
    outbox: Outbox
    store: AlertStore


@asynccontextmanager
async def process(tmp_path: Path, sender: Sender, *, crash: bool = True) -> AsyncIterator[Process]:
    """One daemon's alert parts. ``crash``: leave without closing anything, as kill -9 does."""
    store = AlertStore(tmp_path / "alerts.sqlite")
    outbox = Outbox(tmp_path / "outbox.sqlite", sender, FAST)
    agent = AlertsAgent(
        store=store,
        certified=outbox,
        events=NoEvents(),
        player=WavSinkPlayer(tmp_path / "played", label="alert"),
        settings=AlertsSettings(),
    )
    tasks = [asyncio.create_task(agent.run()), asyncio.create_task(outbox.run())]
    try:
        yield Process(agent, outbox, store)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not crash:
            outbox.close()
            store.close()


async def until(condition: object, timeout: float = 15.0) -> None:  # fsyncs are slow on a busy disk
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def due_alarm(token: str) -> Alert:
    return Alert(token, AlertType.ALARM, datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1))


async def test_alert_started_is_one_message_across_a_crash_while_ringing(tmp_path: Path) -> None:
    sender = Sender()
    async with asyncio.timeout(LIMIT):
        seed = AlertStore(tmp_path / "alerts.sqlite")
        alarm = due_alarm("ring-1")
        await seed.put(alarm)
        seed.close()
        async with process(tmp_path, sender) as first:
            await until(lambda: first.agent.active_token == "ring-1")
            await until(lambda: ("AlertStarted", ring_message_id("AlertStarted", alarm)) in sender.received)
        # The next process rings the same alert again (it is within the cutoff) ...
        async with process(tmp_path, sender, crash=False) as second:
            await until(lambda: second.agent.active_token == "ring-1")
            # The ring is announced right after the sound starts: the second process tries, and the outbox knows it.
            await until(lambda: second.outbox.duplicates == 1)
            await second.agent.stop_active()
            await until(lambda: any(name == "AlertStopped" for name, _ in sender.received))
    started = [mid for name, mid in sender.received if name == "AlertStarted"]
    stopped = [mid for name, mid in sender.received if name == "AlertStopped"]
    # ... and AVS heard one AlertStarted and one AlertStopped, each with one messageId. (A "kill" between AVS's
    # answer and the outbox's delete re-sends the same message once: at-least-once, de-duplicated by messageId.)
    assert set(started) == {ring_message_id("AlertStarted", alarm)} and len(started) <= 2, started
    assert stopped == [ring_message_id("AlertStopped", alarm)]


async def test_started_but_not_yet_delivered_is_sent_once(tmp_path: Path) -> None:
    offline = Sender()
    async with asyncio.timeout(LIMIT):
        seed = AlertStore(tmp_path / "alerts.sqlite")
        alarm = due_alarm("ring-2")
        await seed.put(alarm)
        seed.close()
        async with process(tmp_path, offline) as first:
            first.outbox.set_connected(False)
            await until(lambda: len(first.outbox) == 1)  # AlertStarted stored, never delivered
        online = Sender()
        async with process(tmp_path, online, crash=False) as second:
            await until(lambda: second.agent.active_token == "ring-2")
            await until(lambda: len(second.outbox) == 0 and online.received)
    assert online.received == [("AlertStarted", ring_message_id("AlertStarted", alarm))]
    assert offline.received == []


async def test_crash_between_alert_stopped_and_the_delete_does_not_ring_again(tmp_path: Path) -> None:
    sender = Sender()
    async with asyncio.timeout(LIMIT):
        alarm = due_alarm("ring-3")
        store = AlertStore(tmp_path / "alerts.sqlite")
        await store.put(alarm)
        store.close()
        outbox = Outbox(tmp_path / "outbox.sqlite", sender, FAST, connected=False)
        # What the first process got done before it died: AlertStopped queued, the alert not yet deleted.
        event = Event.new("Alerts", "AlertStopped", {"token": "ring-3"})
        body = json.loads(event.to_json())
        body["event"]["header"]["messageId"] = ring_message_id("AlertStopped", alarm)
        await outbox.put(json.dumps(body).encode())
        outbox.close()
        async with process(tmp_path, sender, crash=False) as second:
            await second.agent.load()
            assert second.agent.alerts == [] and await second.store.all() == []
            await until(lambda: sender.received)
    assert sender.received == [("AlertStopped", ring_message_id("AlertStopped", alarm))]


async def test_outbox_stores_a_message_id_once_also_after_delivery_and_reopen(tmp_path: Path) -> None:
    sender = Sender()
    body = Event.new("Alerts", "AlertStarted", {"token": "x"}).to_json()
    async with asyncio.timeout(LIMIT):
        box = Outbox(tmp_path / "o.sqlite", sender, FAST)
        await box.put(body)
        await box.put(body)
        assert len(box) == 1 and box.duplicates == 1
        task = asyncio.create_task(box.run())
        await until(lambda: len(box) == 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        box.close()
        reopened = Outbox(tmp_path / "o.sqlite", sender, FAST)
        mid = json.loads(body)["event"]["header"]["messageId"]
        assert reopened.seen(mid)
        await reopened.put(body)
        assert len(reopened) == 0 and reopened.duplicates == 1
        other = Event.new("Alerts", "AlertStarted", {"token": "x"}).to_json()  # a new messageId
        await reopened.put(other)
        assert len(reopened) == 1
        reopened.close()
    assert len(sender.received) == 1
