"""Alert scheduling rules (pure), SetAlert parsing and the AlertsState context."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from avsd.agents.alert_schedule import (
    Alert,
    AlertScheduleSettings,
    AlertState,
    AlertType,
    Asset,
    SetOutcome,
    alert_from_directive,
    alerts_state,
    decide_set,
    format_time,
    plan,
    recover,
    started,
)
from avsd.avs.messages import Directive, parse_directive
from avsd.errors import DirectiveParseError

NOW = datetime(2024, 5, 1, 7, 0, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def alert(token: str, offset_min: float, state: AlertState = AlertState.SET, started_min: float | None = None,
          kind: AlertType = AlertType.ALARM) -> Alert:
    return Alert(
        token=token,
        type=kind,
        scheduled_time=NOW + offset_min * M,
        state=state,
        started_at=None if started_min is None else NOW + started_min * M,
    )


A = AlertState.ACTIVE
S = AlertState.SNOOZED

# (case, alerts, expected expire, drop, start, waiting, wake_in_s)
PLAN_CASES: list[tuple[str, list[Alert], list[str], list[str], str | None, list[str], float | None]] = [
    ("nothing", [], [], [], None, [], None),
    ("future alarm: sleep until it", [alert("a", 10)], [], [], None, [], 600.0),
    ("exactly due", [alert("a", 0)], [], [], "a", [], 3600.0),
    ("5 min late still sounds", [alert("a", -5)], [], [], "a", [], 3600.0),
    ("30 min late still sounds", [alert("a", -30)], [], [], "a", [], 3600.0),
    ("31 min late is dropped", [alert("a", -31)], [], ["a"], None, [], None),
    ("days late (device was off) dropped", [alert("a", -3 * 24 * 60)], [], ["a"], None, [], None),
    ("earliest due starts, next waits", [alert("b", -2), alert("a", -4)], [], [], "a", ["b"], 28 * 60.0),
    ("active keeps ringing, due waits", [alert("a", -10, A, -10), alert("b", -1)], [], [], None, ["b"],
     29 * 60.0),
    ("active rings 1 h max", [alert("a", -60, A, -60)], ["a"], [], None, [], None),
    ("active not yet 1 h", [alert("a", -59, A, -59)], [], [], None, [], 60.0),
    ("ring time counts from start, not schedule", [alert("a", -70, A, -20)], [], [], None, [], 40 * 60.0),
    ("expired one makes room for the next", [alert("a", -61, A, -61), alert("b", -1)], ["a"], [], "b", [],
     3600.0),
    ("waiting alert goes past due", [alert("a", -50, A, -50), alert("b", -31)], [], ["b"], None, [], 600.0),
    ("snoozed fires at its new time", [alert("a", 9, S)], [], [], None, [], 540.0),
    ("snoozed and due", [alert("a", 0, S)], [], [], "a", [], 3600.0),
    ("future timer after due alarm", [alert("a", -1), alert("t", 5, kind=AlertType.TIMER)], [], [], "a", [],
     300.0),
    ("tie on time: token order", [alert("y", -1), alert("x", -1)], [], [], "x", ["y"], 29 * 60.0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "alerts", "expire", "drop", "start", "waiting", "wake"),
    PLAN_CASES,
    ids=[c[0] for c in PLAN_CASES],
)
def test_plan(
    case: str,
    alerts: list[Alert],
    expire: list[str],
    drop: list[str],
    start: str | None,
    waiting: list[str],
    wake: float | None,
) -> None:
    p = plan(alerts, NOW)
    assert [a.token for a in p.expire] == expire
    assert [a.token for a in p.drop] == drop
    assert (p.start.token if p.start else None) == start
    assert [a.token for a in p.waiting] == waiting
    assert p.wake_in_s == (pytest.approx(wake) if wake is not None else None)


def test_plan_settings_shrink_the_limits() -> None:
    cfg = AlertScheduleSettings(past_due_cutoff_s=60, max_ring_s=120)
    p = plan([alert("late", -2), alert("ringing", -5, A, -2)], NOW, cfg)
    assert [a.token for a in p.drop] == ["late"]
    assert [a.token for a in p.expire] == ["ringing"]


def test_recover_then_plan_after_power_loss() -> None:
    # Device died while "a" was ringing (10 min ago) and "b" was ringing 40 min ago; it boots now.
    alerts = recover([alert("a", -10, A, -10), alert("b", -40, A, -40), alert("c", 60)])
    assert [a.state for a in alerts] == [AlertState.SET] * 3
    assert all(a.started_at is None for a in alerts)
    p = plan(alerts, NOW)
    assert p.start is not None and p.start.token == "a"
    assert [a.token for a in p.drop] == ["b"]
    ringing = started(p.start, NOW)
    assert (ringing.state, ringing.started_at) == (A, NOW)


# (case, existing, incoming offset minutes, outcome, stored state)
SET_CASES = [
    ("new", None, 10, SetOutcome.NEW, AlertState.SET),
    ("update a waiting alert", alert("a", 30), 10, SetOutcome.UPDATED, AlertState.SET),
    ("update a snoozed alert", alert("a", 5, S), 10, SetOutcome.UPDATED, AlertState.SET),
    ("snooze the ringing alert", alert("a", -1, A, -1), 9, SetOutcome.SNOOZED, AlertState.SNOOZED),
    ("new but 31 min in the past", None, -31, SetOutcome.PAST_DUE, AlertState.SET),
    ("new 10 min in the past still set", None, -10, SetOutcome.NEW, AlertState.SET),
]


@pytest.mark.parametrize(("case", "existing", "offset", "outcome", "state"), SET_CASES,
                         ids=[c[0] for c in SET_CASES])
def test_decide_set(case: str, existing: Alert | None, offset: int, outcome: SetOutcome,
                    state: AlertState) -> None:
    d = decide_set(existing, alert("a", offset), NOW)
    assert d.outcome is outcome
    assert d.alert.state is state
    assert d.alert.scheduled_time == NOW + offset * M
    assert d.alert.started_at is None


def test_snooze_keeps_original_assets_unless_new_ones_come() -> None:
    ringing = Alert("a", AlertType.REMINDER, NOW, (Asset("x", "https://x/1.mp3"),), ("x",), label="pills",
                    state=A, started_at=NOW)
    plain = alert("a", 9, kind=AlertType.REMINDER)
    assert decide_set(ringing, plain, NOW).alert.assets == ringing.assets
    new_assets = Alert("a", AlertType.REMINDER, NOW + 9 * M, (Asset("y", "https://y/2.mp3"),))
    assert decide_set(ringing, new_assets, NOW).alert.assets == new_assets.assets


def set_alert(**payload: Any) -> Directive:
    raw = json.dumps({"directive": {"header": {"namespace": "Alerts", "name": "SetAlert", "messageId": "m"},
                                    "payload": payload}})
    return parse_directive(raw)


def test_alert_from_directive_full_payload() -> None:
    a = alert_from_directive(set_alert(
        token="tok", type="REMINDER", scheduledTime="2017-08-07T09:02:58+0000",
        assets=[{"assetId": "one", "url": "https://a/1.mp3"}, {"assetId": "two", "url": "https://a/2.mp3"}],
        assetPlayOrder=["two", "one"], backgroundAlertAsset="one", loopCount=2, loopPauseInMilliSeconds=1000,
    ))
    assert a.token == "tok" and a.type is AlertType.REMINDER
    assert a.scheduled_time == datetime(2017, 8, 7, 9, 2, 58, tzinfo=UTC)
    assert a.assets == (Asset("one", "https://a/1.mp3"), Asset("two", "https://a/2.mp3"))
    assert (a.asset_play_order, a.background_asset) == (("two", "one"), "one")
    assert (a.loop_count, a.loop_pause_ms) == (2, 1000)


@pytest.mark.parametrize(
    "when", ["2017-08-07T11:02:58+02:00", "2017-08-07T09:02:58Z", "2017-08-07T09:02:58+0000"]
)
def test_scheduled_time_offsets_are_normalised_to_utc(when: str) -> None:
    a = alert_from_directive(set_alert(token="t", type="TIMER", scheduledTime=when))
    assert format_time(a.scheduled_time) == "2017-08-07T09:02:58+0000"


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "TIMER", "scheduledTime": "2017-08-07T09:02:58+0000"},
        {"token": "t", "type": "EGG", "scheduledTime": "2017-08-07T09:02:58+0000"},
        {"token": "t", "type": "TIMER"},
        {"token": "t", "type": "TIMER", "scheduledTime": "tomorrow"},
        {"token": "t", "type": "TIMER", "scheduledTime": "2017-08-07T09:02:58"},  # no offset
        {"token": "t", "type": "TIMER", "scheduledTime": "2017-08-07T09:02:58Z", "loopCount": -1},
        {"token": "t", "type": "TIMER", "scheduledTime": "2017-08-07T09:02:58Z", "loopCount": "2"},
        {"token": "t", "type": "TIMER", "scheduledTime": "2017-08-07T09:02:58Z", "assets": [{"assetId": 1}]},
        {"token": "t", "type": "TIMER", "scheduledTime": "2017-08-07T09:02:58Z", "assetPlayOrder": ["ghost"]},
        {"token": "t", "type": "TIMER", "scheduledTime": "2017-08-07T09:02:58Z", "backgroundAlertAsset": "x"},
    ],
)
def test_bad_set_alert_payloads_raise_directive_parse_error(payload: dict[str, Any]) -> None:
    directive = set_alert(**payload)
    with pytest.raises(DirectiveParseError) as info:
        alert_from_directive(directive)
    assert info.value.raw == directive.raw


def test_alerts_state_context() -> None:
    state = alerts_state([alert("b", 10), alert("a", -1, A, -1, kind=AlertType.TIMER)])
    assert state == {
        "allAlerts": [
            {"token": "a", "type": "TIMER", "scheduledTime": "2024-05-01T06:59:00+0000"},
            {"token": "b", "type": "ALARM", "scheduledTime": "2024-05-01T07:10:00+0000"},
        ],
        "activeAlerts": [{"token": "a", "type": "TIMER", "scheduledTime": "2024-05-01T06:59:00+0000"}],
    }
