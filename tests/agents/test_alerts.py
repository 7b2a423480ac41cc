"""AlertsAgent with real parts: SQLite store, the WAV-sink player, real asyncio timing; the certified outbox is a
recording fake that also checks the store at the moment each event is queued."""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from avsd.agents.alert_schedule import Alert, AlertState, AlertType, format_time
from avsd.agents.alert_store import AlertStore
from avsd.agents.alerts import ALARM_SOUND, AlertsAgent, AlertsSettings, alarm_sound_wav, event_from_json
from avsd.agents.focus_agent import DialogFocus, FocusArbiter
from avsd.avs.messages import Directive, Event
from avsd.errors import DirectiveParseError
from avsd.focus import Behavior, Channel, FocusChange, FocusState
from avsd.playback.pcm import WavSinkPlayer

LIMIT = 15.0


@dataclass
class RecordingCertified:
    store: AlertStore
    events: list[tuple[str, str]] = field(default_factory=list)
    stored_at_put: list[list[str]] = field(default_factory=list)

    message_ids: list[str] = field(default_factory=list)

    async def put(self, event_json: bytes) -> None:
        event = event_from_json(event_json)
        self.events.append((event.header.name, event.payload["token"]))
        self.message_ids.append(event.header.message_id)
        self.stored_at_put.append([a.token for a in await self.store.all()])

    def seen(self, message_id: str) -> bool:
        return message_id in self.message_ids


@dataclass
class RecordingEvents:
    sent: list[Event] = field(default_factory=list)

    def send(self, event: Event) -> None:
        self.sent.append(event)

    @property
    def names(self) -> list[str]:
        return [e.header.name for e in self.sent]


@dataclass
class Rig:
    agent: AlertsAgent
    certified: RecordingCertified
    events: RecordingEvents
    store: AlertStore
    player: WavSinkPlayer
    out: Path

    def names(self) -> list[str]:
        return [name for name, _ in self.certified.events]

    async def wait_for(self, name: str, token: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while (name, token) not in self.certified.events:
                await asyncio.sleep(0.01)

    async def wait_sounded(self, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.agent.sounded) < count:
                await asyncio.sleep(0.01)


@asynccontextmanager
async def rig(
    tmp_path: Path,
    settings: AlertsSettings | None = None,
    seed: tuple[Alert, ...] = (),
    focus: FocusArbiter | None = None,
) -> AsyncIterator[Rig]:
    store = AlertStore(tmp_path / "alerts.sqlite")
    for alert in seed:
        await store.put(alert)
    certified = RecordingCertified(store)
    events = RecordingEvents()
    out = tmp_path / "played"
    player = WavSinkPlayer(out, label="alert")
    agent = AlertsAgent(
        store=store,
        certified=certified,
        events=events,
        player=player,
        settings=settings or AlertsSettings(),
        focus=focus,
    )
    if focus is not None:
        focus.register("Alerts", agent)
    task = asyncio.create_task(agent.run())
    try:
        async with asyncio.timeout(LIMIT):
            yield Rig(agent, certified, events, store, player, out)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await player.close()
        store.close()


def set_alert(token: str, when: datetime | str, kind: str = "ALARM", **extra: Any) -> Directive:
    scheduled = when if isinstance(when, str) else format_time(when)
    return Directive.new("Alerts", "SetAlert", {"token": token, "type": kind, "scheduledTime": scheduled, **extra})


def delete_alert(token: str) -> Directive:
    return Directive.new("Alerts", "DeleteAlert", {"token": token})


def now() -> datetime:
    return datetime.now(UTC)


def test_builtin_sound_is_a_small_valid_wav_with_sound_in_it(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(alarm_sound_wav())
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        frames = wav.readframes(wav.getnframes())
    assert 1.0 < len(frames) / 2 / 16000 < 2.0
    assert max(abs(int.from_bytes(frames[i : i + 2], "little", signed=True)) for i in range(0, 8000, 2)) > 5000
    assert len(ALARM_SOUND) < 50_000


async def test_set_alert_is_stored_before_succeeded_and_rings_at_its_time(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        when = now() + timedelta(seconds=1)
        await r.agent.handle(set_alert("t1", when.replace(microsecond=0) + timedelta(seconds=1)))
        assert r.certified.events == [("SetAlertSucceeded", "t1")]
        assert r.certified.stored_at_put[0] == ["t1"], "SetAlertSucceeded queued before the alert was stored"
        context = r.agent.context()
        assert context["header"] == {"namespace": "Alerts", "name": "AlertsState"}
        assert [a["token"] for a in context["payload"]["allAlerts"]] == ["t1"]
        assert context["payload"]["activeAlerts"] == []
        await r.wait_for("AlertStarted", "t1", timeout=4)
        await r.wait_sounded()
        token, at = r.agent.sounded[0]
        scheduled = when.replace(microsecond=0) + timedelta(seconds=1)
        assert token == "t1" and abs((at - scheduled).total_seconds()) < 0.25
        assert r.agent.active_token == "t1"
        assert [a["token"] for a in r.agent.context()["payload"]["activeAlerts"]] == ["t1"]
        stored = await r.store.get("t1")
        assert stored is not None and stored.state is AlertState.ACTIVE
        assert await r.agent.stop_active() == "t1"
        assert r.names() == ["SetAlertSucceeded", "AlertStarted", "AlertStopped"]
        assert await r.store.all() == [] and r.agent.active_token is None
        assert await r.agent.stop_active() is None
    assert sorted(r.out.glob("alert-*.wav")), "the built-in sound was not played"


async def test_delete_sounding_alert_stops_it_then_succeeds_and_unknown_token_succeeds(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.agent.handle(set_alert("t1", now()))
        await r.wait_sounded()
        await r.agent.handle(delete_alert("t1"))
        await r.agent.handle(delete_alert("never-set"))
        assert r.names() == [
            "SetAlertSucceeded",
            "AlertStarted",
            "AlertStopped",
            "DeleteAlertSucceeded",
            "DeleteAlertSucceeded",
        ]
        assert await r.store.all() == []


async def test_set_alert_for_the_sounding_token_snoozes_it(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.agent.handle(set_alert("t1", now()))
        await r.wait_sounded()
        later = now() + timedelta(minutes=9)
        await r.agent.handle(set_alert("t1", later))
        assert r.agent.active_token is None
        stored = await r.store.get("t1")
        assert stored is not None and stored.state is AlertState.SNOOZED
        assert stored.scheduled_time == later.replace(microsecond=0)
        # A snooze is not a stop: no AlertStopped (SDK).
        assert r.names() == ["SetAlertSucceeded", "AlertStarted", "SetAlertSucceeded"]


@pytest.mark.parametrize(
    ("late_min", "expected"),
    [(10, ["SetAlertSucceeded", "AlertStarted"]), (40, ["SetAlertFailed"])],
)
async def test_set_alert_in_the_past_follows_the_30_minute_rule(
    tmp_path: Path, late_min: int, expected: list[str]
) -> None:
    async with rig(tmp_path) as r:
        await r.agent.handle(set_alert("t1", now() - timedelta(minutes=late_min)))
        if "AlertStarted" in expected:
            await r.wait_for("AlertStarted", "t1")
        else:
            await asyncio.sleep(0.2)
        assert r.names() == expected


async def test_stored_alerts_at_start_up_past_due_rule_and_recovery(tmp_path: Path) -> None:
    t = now()
    seed = (
        Alert("late-10", AlertType.ALARM, t - timedelta(minutes=10)),
        Alert("late-40", AlertType.ALARM, t - timedelta(minutes=40)),
        # Was sounding when the power went: set back to SET and sounds again (it is 5 min late).
        Alert("was-active", AlertType.TIMER, t - timedelta(minutes=5), state=AlertState.ACTIVE, started_at=t),
        Alert("future", AlertType.REMINDER, t + timedelta(hours=1)),
    )
    async with rig(tmp_path, seed=seed) as r:
        await r.wait_for("AlertStopped", "late-40")
        await r.wait_sounded()
        assert r.agent.sounded[0][0] == "late-10"  # earliest first; the other due one waits behind it
        assert ("AlertStarted", "late-40") not in r.certified.events
        assert await r.agent.stop_active() == "late-10"
        await r.wait_for("AlertStarted", "was-active")
        assert await r.agent.stop_active() == "was-active"
        assert [a.token for a in r.agent.alerts] == ["future"]
        assert r.names() == ["AlertStopped", "AlertStarted", "AlertStopped", "AlertStarted", "AlertStopped"]


async def test_an_alert_nobody_stops_stops_after_max_ring_time(tmp_path: Path) -> None:
    async with rig(tmp_path, AlertsSettings(max_ring_s=1.0)) as r:
        await r.agent.handle(set_alert("t1", now()))
        await r.wait_sounded()
        await r.wait_for("AlertStopped", "t1", timeout=3)
        assert r.agent.active_token is None and await r.store.all() == []


async def test_unreachable_asset_falls_back_to_the_builtin_sound(tmp_path: Path) -> None:
    async with rig(tmp_path, AlertsSettings(asset_timeout_s=0.5)) as r:
        # Port 9 on loopback: nothing listens, the fetch fails at once.
        assets = [{"assetId": "tone", "url": "http://127.0.0.1:9/tone.mp3"}]
        await r.agent.handle(set_alert("t1", now(), assets=assets, assetPlayOrder=["tone"], loopCount=2))
        await r.wait_sounded(timeout=5)
        assert r.agent.active_token == "t1"
        await r.agent.stop_active()
    played = sorted(r.out.glob("alert-*.wav"))
    assert played
    with wave.open(str(played[-1])) as wav:
        assert wav.getnframes() > 0


async def test_dialog_over_a_sounding_alert_moves_it_to_the_background_and_back(tmp_path: Path) -> None:
    settings = AlertsSettings(volume=80, background_volume=20)
    async with rig(tmp_path, settings) as r:
        await r.agent.handle(set_alert("t1", now()))
        await r.wait_sounded()
        assert r.player.volume == 80
        r.agent.set_dialog_active(True)
        assert r.player.volume == 20
        r.agent.set_dialog_active(True)  # no second event
        r.agent.on_focus(FocusChange("Alerts", Channel.ALERTS, FocusState.FOREGROUND, Behavior.PLAY))
        assert r.player.volume == 80
        assert r.events.names == ["AlertEnteredBackground", "AlertEnteredForeground"]
        assert all(e.payload == {"token": "t1"} for e in r.events.sent)
        r.agent.on_focus(FocusChange("Alerts", Channel.ALERTS, FocusState.NONE, Behavior.STOP))
        await r.wait_for("AlertStopped", "t1")


@pytest.mark.parametrize(
    "payload",
    [
        {"token": "bad", "type": "EGG", "scheduledTime": "2030-01-01T00:00:00+0000"},
        {"token": "bad", "type": "ALARM", "scheduledTime": "tomorrow"},
        {"token": "bad", "type": "ALARM", "scheduledTime": "2030-01-01T00:00:00+0000", "assets": [{"url": 1}]},
    ],
)
async def test_malformed_set_alert_sends_failed_and_raises(tmp_path: Path, payload: dict[str, Any]) -> None:
    async with rig(tmp_path) as r:
        with pytest.raises(DirectiveParseError):
            await r.agent.handle(Directive.new("Alerts", "SetAlert", payload))
        assert r.certified.events == [("SetAlertFailed", "bad")]
        assert await r.store.all() == []


async def test_delete_alert_without_token_raises(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with pytest.raises(DirectiveParseError):
            await r.agent.handle(Directive.new("Alerts", "DeleteAlert", {}))
        assert r.certified.events == []


def test_event_from_json_keeps_the_message_id() -> None:
    event = Event.new("Alerts", "AlertStarted", {"token": "x"})
    back = event_from_json(event.to_json())
    assert back.header == event.header and dict(back.payload) == {"token": "x"}
    assert json.loads(back.to_json()) == json.loads(event.to_json())


async def test_alert_with_reachable_asset_plays_the_asset(tmp_path: Path) -> None:
    asset = tmp_path / "tone.wav"
    asset.write_bytes(alarm_sound_wav(rate=8000))
    async with rig(tmp_path) as r:
        assets = [{"assetId": "tone", "url": asset.as_uri()}]
        await r.agent.handle(set_alert("t1", now(), assets=assets, assetPlayOrder=["tone"]))
        await r.wait_sounded()
        await r.agent.stop_active()
    assert sorted(r.out.glob("alert-*.wav"))



async def test_alert_takes_the_alerts_channel_and_a_dialog_backgrounds_it(tmp_path: Path) -> None:
    arbiter = FocusArbiter()
    dialog = DialogFocus(arbiter)
    dialog.hold("dialog")  # the user is talking when the alert falls due
    async with rig(tmp_path, AlertsSettings(volume=70, background_volume=10), focus=arbiter) as r:
        await r.agent.handle(set_alert("t1", now()))
        await r.wait_for("AlertStarted", "t1")
        assert arbiter.holds(Channel.ALERTS, "Alerts")
        assert arbiter.focus_of(Channel.ALERTS) is FocusState.BACKGROUND
        assert r.player.volume == 10
        assert r.events.names == ["AlertEnteredBackground"]  # after AlertStarted, as the SDK orders them
        dialog.release("dialog")
        assert r.player.volume == 70
        assert r.events.names == ["AlertEnteredBackground", "AlertEnteredForeground"]
        await r.agent.stop_active()
        assert not arbiter.holds(Channel.ALERTS, "Alerts")
        assert r.names() == ["SetAlertSucceeded", "AlertStarted", "AlertStopped"]  # no second AlertStopped
