"""Alarms end to end: the real daemon and emulator over HTTP/2 + TLS; the emulator goes away and comes back.

- an alarm set 2 s ahead rings on time (+-250 ms) with the emulator stopped; AlertStarted / AlertStopped reach the
  new emulator after the reconnect, in order, once each;
- "Alexa, stop" while ringing: the wake word sends the alert to the background, the cloud answers DeleteAlert for
  the active token ($active_alert in the scenario rule);
- alarms stored before start-up follow the 30-minute past-due rule.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from avsd.agents.alert_schedule import Alert, AlertType, format_time
from avsd.agents.alert_store import AlertStore
from avsd.audio.frames import SAMPLE_RATE
from avsd.avs.messages import Directive
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.emulator.server import Emulator
from avsd.state import DialogState
from tests.harness import Device, fixture_pcm, running_device

WAKE = "alexa-what-time-is-it"


def alerts_events(emulator: Emulator) -> list[str]:
    return [r.qualified_name for r in emulator.records if (r.qualified_name or "").startswith("Alerts.")]


def set_alert(token: str, when: datetime, kind: str = "ALARM") -> Directive:
    return Directive.new("Alerts", "SetAlert", {"token": token, "type": kind, "scheduledTime": format_time(when)})


async def wait_sounded(device: Device, timeout: float = 6.0) -> tuple[str, datetime]:
    async with asyncio.timeout(timeout):
        while not device.daemon.alerts.sounded:
            await asyncio.sleep(0.005)
    return device.daemon.alerts.sounded[0]


async def test_alarm_rings_on_time_offline_and_its_events_arrive_after_reconnect(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    first = Emulator(cert_dir=certs)
    await first.start()
    port, refresh_token = first.port, first.refresh_token
    async with running_device(tmp_path, emulator=first) as device:
        # On a whole second, 2-3 s ahead (scheduledTime has one-second resolution).
        scheduled = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        await first.push_directive(set_alert("alarm-1", scheduled))
        await first.wait_for_event("Alerts.SetAlertSucceeded", timeout=5)
        await first.stop()
        await device.wait_state(DialogState.OFFLINE, timeout=5)

        token, rang_at = await wait_sounded(device)
        assert token == "alarm-1"
        assert abs((rang_at - scheduled).total_seconds()) <= 0.25, rang_at - scheduled
        assert device.daemon.alerts.context()["payload"]["activeAlerts"][0]["token"] == "alarm-1"
        await asyncio.sleep(0.5)
        assert await device.daemon.alerts.stop_active() == "alarm-1"
        assert len(device.daemon.outbox) == 2  # AlertStarted, AlertStopped: waiting for AVS

        second = Emulator(port=port, cert_dir=certs, refresh_token=refresh_token)
        await second.start()
        try:
            await second.wait_for_event("Alerts.AlertStopped", timeout=15)
            await device.daemon.outbox.drained()
            sync = await second.wait_for_event("System.SynchronizeState")
            await device.daemon.events.drain()  # outbox and event queue empty: nothing is left that could come
            assert alerts_events(second) == ["Alerts.AlertStarted", "Alerts.AlertStopped"]
            payloads = [
                r.event["event"]["payload"] for r in second.records if (r.qualified_name or "").startswith("Alerts.")
            ]
            assert payloads == [{"token": "alarm-1"}, {"token": "alarm-1"}]
            states = [c for c in sync.event["context"] if c["header"]["namespace"] == "Alerts"]
            assert states and states[0]["payload"] == {"allAlerts": [], "activeAlerts": []}
        finally:
            await second.stop()
    played = sorted(device.out_dir.glob("alert-*.wav"))
    assert played, "nothing was played for the alarm"


async def test_alexa_stop_while_ringing_backgrounds_the_alert_and_the_cloud_deletes_it(tmp_path: Path) -> None:
    async with running_device(tmp_path, stop_capture=False) as device:
        emulator = device.emulator
        emulator.add_rule(
            Rule(
                match="SpeechRecognizer.Recognize",
                times=1,
                directives=(DirectiveSpec("Alerts", "DeleteAlert", {"token": "$active_alert"}),),
            )
        )
        await emulator.push_directive(set_alert("timer-1", datetime.now(UTC), kind="TIMER"))
        await wait_sounded(device)
        await emulator.wait_for_event("Alerts.AlertStarted")
        await device.source.feed(bytes(SAMPLE_RATE) + fixture_pcm(WAKE) + bytes(SAMPLE_RATE * 2))
        recognize = await emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=10)
        await emulator.wait_for_event("Alerts.DeleteAlertSucceeded", timeout=10)
        await device.settle()
        await device.daemon.outbox.drained()
    alerts_context = next(c for c in recognize.event["context"] if c["header"]["namespace"] == "Alerts")
    assert alerts_context["payload"]["activeAlerts"][0]["token"] == "timer-1"
    names = alerts_events(emulator)
    assert names[:2] == ["Alerts.SetAlertSucceeded", "Alerts.AlertStarted"]
    assert "Alerts.AlertEnteredBackground" in names
    assert names.index("Alerts.AlertStopped") < names.index("Alerts.DeleteAlertSucceeded")
    assert device.daemon.alerts.alerts == []


async def test_stored_alarms_follow_the_past_due_rule_at_start_up(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    store = AlertStore(tmp_path / "state" / "alerts.sqlite")
    await store.put(Alert("late-10-min", AlertType.ALARM, now - timedelta(minutes=10)))
    await store.put(Alert("late-40-min", AlertType.ALARM, now - timedelta(minutes=40)))
    store.close()
    async with running_device(tmp_path) as device:
        token, _ = await wait_sounded(device)
        assert token == "late-10-min"
        await device.emulator.wait_for_event("Alerts.AlertStarted", timeout=5)
        await device.emulator.wait_for_event("Alerts.AlertStopped", timeout=5)
        await device.daemon.alerts.stop_active()
        await device.emulator.wait_for_event("Alerts.AlertStopped", timeout=5, count=2)
    stopped = [r.event["event"]["payload"]["token"] for r in device.emulator.records
               if r.qualified_name == "Alerts.AlertStopped"]
    started = [r.event["event"]["payload"]["token"] for r in device.emulator.records
               if r.qualified_name == "Alerts.AlertStarted"]
    assert started == ["late-10-min"]
    assert sorted(stopped) == ["late-10-min", "late-40-min"]
