"""Alerts (timers, alarms, reminders): the data model and the scheduling rules (protocol reference §6.6).

Pure: no I/O, no clock. ``now`` (an aware UTC datetime) is always an argument. The Alerts agent keeps the
alerts in ``AlertStore``, asks ``plan()`` what to do, does it, and sleeps ``plan.wake_in_s`` (or until the
next directive) before asking again. Rules, from the SDK (``AlertScheduler.cpp``, ``Alert.cpp``):

- an alert sounds at ``scheduledTime`` without any connectivity;
- one alert sounds at a time; others that fall due wait behind it, earliest first;
- an alert more than ``past_due_cutoff_s`` (30 min) late is not sounded but dropped and reported with
  ``AlertStopped`` — whether found at start-up or still waiting behind another alert;
- an alert sounds at most ``max_ring_s`` (1 h), then is stopped and reported;
- SetAlert for a token that is sounding is a snooze: it stops and is rescheduled (``SNOOZED``);
- an alert that was ACTIVE when the power went is set back to SET at start-up (``recover``), so it sounds
  again if it is within the cutoff, and is reported stopped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from avsd.avs.messages import Directive
from avsd.errors import DirectiveParseError
from avsd.settings import setting


class AlertType(StrEnum):
    TIMER = "TIMER"
    ALARM = "ALARM"
    REMINDER = "REMINDER"


class AlertState(StrEnum):
    SET = "SET"  # waiting for its time
    ACTIVE = "ACTIVE"  # sounding (``started_at`` says since when)
    SNOOZED = "SNOOZED"  # was sounding, rescheduled by a SetAlert with the same token


@dataclass(frozen=True, slots=True)
class Asset:
    asset_id: str
    url: str


@dataclass(frozen=True, slots=True)
class Alert:
    token: str
    type: AlertType
    scheduled_time: datetime  # aware, UTC
    assets: tuple[Asset, ...] = ()
    asset_play_order: tuple[str, ...] = ()
    background_asset: str | None = None
    loop_count: int | None = None
    loop_pause_ms: int = 0
    label: str = ""
    state: AlertState = AlertState.SET
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertScheduleSettings:
    past_due_cutoff_s: float = setting(
        1800.0, "an alert later than this (seconds) is dropped instead of sounded", min=0.0, max=86400.0
    )
    max_ring_s: float = setting(3600.0, "an unattended alert stops after this many seconds", min=10.0, max=86400.0)


# -- SetAlert payload ----------------------------------------------------------------------------------------


def format_time(when: datetime) -> str:
    """AVS wire format: ``2017-08-07T09:02:58+0000``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_time(text: str) -> datetime:
    """ISO-8601 with an offset (``+0000``, ``+00:00`` or ``Z``) -> aware UTC. ValueError otherwise."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError(f"time {text!r} is out of range") from None


def _opt_int(payload: Mapping[str, Any], key: str, raw: str, minimum: int) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DirectiveParseError(f"SetAlert {key} must be an integer >= {minimum}", raw)
    return value


def alert_from_directive(directive: Directive) -> Alert:
    """Read a ``SetAlert`` payload. Raises DirectiveParseError (-> SetAlertFailed / ExceptionEncountered)."""
    p, raw = directive.payload, directive.raw
    token = p.get("token")
    if not isinstance(token, str) or not token:
        raise DirectiveParseError("SetAlert without a token", raw)
    kind_text = p.get("type")
    try:
        kind = AlertType(str(kind_text))
    except ValueError as exc:
        raise DirectiveParseError(f"SetAlert type {kind_text!r} is not TIMER/ALARM/REMINDER", raw) from exc
    when = p.get("scheduledTime")
    if not isinstance(when, str):
        raise DirectiveParseError("SetAlert without scheduledTime", raw)
    try:
        scheduled = parse_time(when)
    except ValueError as exc:
        raise DirectiveParseError(f"SetAlert scheduledTime {when!r}: {exc}", raw) from exc
    assets: list[Asset] = []
    listed = p.get("assets") or []
    if not isinstance(listed, list):  # found by bench/bench_fuzz.py: "assets": 5 was a TypeError
        raise DirectiveParseError("SetAlert assets must be a list", raw)
    for item in listed:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("assetId"), str)
            or not isinstance(item.get("url"), str)
        ):
            raise DirectiveParseError("SetAlert asset needs assetId and url strings", raw)
        assets.append(Asset(item["assetId"], item["url"]))
    order = p.get("assetPlayOrder") or ()
    if not isinstance(order, list | tuple) or not all(isinstance(a, str) for a in order):
        raise DirectiveParseError("SetAlert assetPlayOrder must be a list of asset ids", raw)
    known = {a.asset_id for a in assets}
    if any(a not in known for a in order):
        raise DirectiveParseError("SetAlert assetPlayOrder names an asset that is not in assets", raw)
    background = p.get("backgroundAlertAsset")
    if background is not None and (not isinstance(background, str) or background not in known):
        raise DirectiveParseError("SetAlert backgroundAlertAsset is not one of the assets", raw)
    label = p.get("label")  # not in 1.x; later versions carry a reminder label
    return Alert(
        token=token,
        type=kind,
        scheduled_time=scheduled,
        assets=tuple(assets),
        asset_play_order=tuple(order),
        background_asset=background,
        loop_count=_opt_int(p, "loopCount", raw, 0),
        # The capital S in "MilliSeconds" is how AVS spells it.
        loop_pause_ms=_opt_int(p, "loopPauseInMilliSeconds", raw, 0) or 0,
        label=label if isinstance(label, str) else "",
    )


def alerts_state(alerts: Iterable[Alert]) -> dict[str, Any]:
    """The ``Alerts.AlertsState`` context payload: every stored alert, and the one sounding (at most one)."""
    ordered = sorted(alerts, key=lambda a: (a.scheduled_time, a.token))

    def entry(a: Alert) -> dict[str, str]:
        return {"token": a.token, "type": str(a.type), "scheduledTime": format_time(a.scheduled_time)}

    return {
        "allAlerts": [entry(a) for a in ordered],
        "activeAlerts": [entry(a) for a in ordered if a.state is AlertState.ACTIVE][:1],
    }


# -- decisions -----------------------------------------------------------------------------------------------


class SetOutcome(StrEnum):
    NEW = "new"
    UPDATED = "updated"  # same token, not sounding: replaced (time, assets, ...)
    SNOOZED = "snoozed"  # same token, sounding: stop it and reschedule
    PAST_DUE = "past-due"  # the requested time is already beyond the cutoff: SetAlertFailed


@dataclass(frozen=True, slots=True)
class SetDecision:
    outcome: SetOutcome
    alert: Alert  # what to store (for PAST_DUE: the rejected alert, not to be stored)


def decide_set(
    existing: Alert | None, incoming: Alert, now: datetime, settings: AlertScheduleSettings | None = None
) -> SetDecision:
    cfg = settings or AlertScheduleSettings()
    if existing is not None and existing.state is AlertState.ACTIVE:
        # Snooze keeps whatever the original alert rendered with unless the new directive brings assets.
        snoozed = replace(
            existing if not incoming.assets else incoming,
            scheduled_time=incoming.scheduled_time,
            state=AlertState.SNOOZED,
            started_at=None,
        )
        return SetDecision(SetOutcome.SNOOZED, snoozed)
    if now - incoming.scheduled_time > timedelta(seconds=cfg.past_due_cutoff_s):
        return SetDecision(SetOutcome.PAST_DUE, incoming)
    fresh = replace(incoming, state=AlertState.SET, started_at=None)
    return SetDecision(SetOutcome.NEW if existing is None else SetOutcome.UPDATED, fresh)


def recover(alerts: Iterable[Alert]) -> list[Alert]:
    """Start-up: alerts that were sounding at power loss are set back to SET (their time is unchanged)."""
    return [
        replace(a, state=AlertState.SET, started_at=None) if a.state is AlertState.ACTIVE else a
        for a in alerts
    ]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do now. Apply in this order: ``expire``, ``drop``, then start ``start`` (if any)."""

    expire: tuple[Alert, ...] = ()  # sounding for max_ring_s: stop, delete, AlertStopped
    drop: tuple[Alert, ...] = ()  # past due beyond the cutoff: delete, AlertStopped (never sounded)
    start: Alert | None = None  # due, nothing sounding: start it (ACTIVE, started_at=now), AlertStarted
    waiting: tuple[Alert, ...] = ()  # due, but another alert is sounding
    wake_in_s: float | None = None  # call plan() again after this long (None: nothing scheduled)


def plan(alerts: Sequence[Alert], now: datetime, settings: AlertScheduleSettings | None = None) -> Plan:
    cfg = settings or AlertScheduleSettings()
    cutoff = timedelta(seconds=cfg.past_due_cutoff_s)
    max_ring = timedelta(seconds=cfg.max_ring_s)
    expire: list[Alert] = []
    drop: list[Alert] = []
    due: list[Alert] = []
    wakes: list[datetime] = []
    sounding: Alert | None = None

    for a in sorted(alerts, key=lambda a: (a.scheduled_time, a.token)):
        if a.state is AlertState.ACTIVE:
            started = a.started_at or a.scheduled_time
            if now - started >= max_ring:
                expire.append(a)
            elif sounding is None:
                sounding = a
                wakes.append(started + max_ring)
            else:
                # Two ACTIVE alerts cannot happen through plan(); treat the later one as due again.
                due.append(a)
        elif now - a.scheduled_time > cutoff:
            drop.append(a)
        elif a.scheduled_time <= now:
            due.append(a)
        else:
            wakes.append(a.scheduled_time)

    start = None
    if sounding is None and due:
        start = due.pop(0)
        wakes.append(now + max_ring)
    # Re-plan when an alert waiting behind the sounding one would become past due.
    wakes.extend(a.scheduled_time + cutoff for a in due)
    wake = min(wakes, default=None)
    wake_in = max(0.0, (wake - now).total_seconds()) if wake is not None else None
    return Plan(tuple(expire), tuple(drop), start, tuple(due), wake_in)


def started(alert: Alert, now: datetime) -> Alert:
    return replace(alert, state=AlertState.ACTIVE, started_at=now)
