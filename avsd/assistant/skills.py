"""What the assistant does with an intent: pure (time arrives as an argument; the device's state arrives as the
Recognize event's context), so every skill is tested with plain values.

The device is the memory: timers and alarms live in its Alerts agent (read back from ``Alerts.AlertsState``),
volume in its Speaker (``Speaker.VolumeState``), music in its AudioPlayer (``AudioPlayer.PlaybackState``). A
timer's name travels inside its token (``avsd-assistant.timer.<name>.<id>``), so "cancel the pasta timer" works
after a restart of either side. A question ("For how long?") travels in ExpectSpeech's opaque ``initiator``,
which the device echoes in its next Recognize, so the server keeps no per-device dialog state either.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avsd.assistant.grammar import ANSWER_INTENT, Clock, Duration, Intent, Language, SlotValue
from avsd.emulator.scenario import DirectiveSpec

TOKEN_PREFIX = "avsd-assistant"
INITIATOR_TYPE = "AVSD_ASSISTANT"
EXPECT_SPEECH_TIMEOUT_MS = 8000
VOLUME_STEP = 10  # AVS volume is 0-100; people say 0-10


@dataclass(frozen=True, slots=True)
class AlertInfo:
    token: str
    type: str  # TIMER / ALARM / REMINDER
    scheduled: datetime.datetime


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the Recognize event's context says about the device."""

    alerts: tuple[AlertInfo, ...] = ()
    active_alerts: tuple[str, ...] = ()
    volume: int | None = None
    muted: bool = False
    player_token: str = ""
    player_activity: str = "IDLE"
    initiator: Mapping[str, Any] | None = None
    player_offset_ms: int = 0

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> DeviceState:
        alerts: list[AlertInfo] = []
        active: list[str] = []
        volume, muted, token, activity, offset = None, False, "", "IDLE", 0
        for item in event.get("context") or []:
            if not isinstance(item, Mapping):
                continue
            header, payload = item.get("header") or {}, item.get("payload") or {}
            name = f"{header.get('namespace')}.{header.get('name')}"
            if name == "Alerts.AlertsState":
                for a in payload.get("allAlerts") or []:
                    when = _parse_time(a.get("scheduledTime"))
                    if when is not None and isinstance(a.get("token"), str):
                        alerts.append(AlertInfo(a["token"], str(a.get("type", "")), when))
                active = [a["token"] for a in payload.get("activeAlerts") or [] if isinstance(a.get("token"), str)]
            elif name == "Speaker.VolumeState":
                volume = payload.get("volume") if isinstance(payload.get("volume"), int) else None
                muted = bool(payload.get("muted", False))
            elif name == "AudioPlayer.PlaybackState":
                token = str(payload.get("token", ""))
                activity = str(payload.get("playerActivity", "IDLE"))
                raw_offset = payload.get("offsetInMilliseconds")
                offset = raw_offset if isinstance(raw_offset, int) and raw_offset >= 0 else 0
        ev_payload = (event.get("event") or {}).get("payload") or {}
        initiator = ev_payload.get("initiator")
        return cls(
            tuple(alerts),
            tuple(active),
            volume,
            muted,
            token,
            activity,
            initiator if isinstance(initiator, Mapping) and initiator.get("type") == INITIATOR_TYPE else None,
            offset,
        )


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # "+0000" (AVS) -> "+00:00"
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def avs_time(when: datetime.datetime) -> str:
    """ISO-8601 with a numeric offset, as AVS sends ``scheduledTime``."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass(frozen=True, slots=True)
class Reply:
    text: str = ""
    directives: tuple[DirectiveSpec, ...] = ()
    expect: Mapping[str, Any] | None = None  # the initiator of an ExpectSpeech (a question was asked)
    music: str | None = None  # a music query or command for the music skill (needs the library)


@dataclass(frozen=True, slots=True)
class SkillSettings:
    clock_24h: bool = False
    ids: Sequence[str] = field(default_factory=tuple)  # for tests: fixed token ids instead of uuid4


class Skills:
    def __init__(self, language: Language, settings: SkillSettings | None = None) -> None:
        self.lang = language
        self.settings = settings or SkillSettings()
        self._ids = list(self.settings.ids)

    def _new_id(self) -> str:
        return self._ids.pop(0) if self._ids else uuid.uuid4().hex[:12]

    def say(self, key: str, **values: Any) -> str:
        return str(self.lang.answers[key]).format(**values)

    # ------------------------------------------------------------------------------------------ entry

    def handle(self, intent: Intent, state: DeviceState, now: datetime.datetime) -> Reply:
        """``now`` is aware, in the local time zone (the system's)."""
        if state.initiator is not None:
            intent = self._merge_answer(intent, state.initiator)
        if {"all", "timers", "alarms"} & set(intent.text.split()):
            intent = Intent(intent.name, {**intent.slots, "all": 1}, intent.text)
        handler = getattr(self, f"_on_{intent.name}", None)
        if handler is None:
            return Reply(self.say("fallback"))
        reply: Reply = handler(intent.slots, state, now)
        return reply

    def _merge_answer(self, intent: Intent, initiator: Mapping[str, Any]) -> Intent:
        """An answer to our question: the asked intent with the new slot (a full command overrides it)."""
        payload = initiator.get("payload") or {}
        if intent.name != ANSWER_INTENT or not isinstance(payload, Mapping):
            return intent
        asked = str(payload.get("intent", ""))
        slots: dict[str, SlotValue] = dict(_decode_slots(payload.get("slots") or {}))
        slots.update(intent.slots)
        return Intent(asked, slots, intent.text)

    def _ask(self, intent: str, slot: str, slots: Mapping[str, SlotValue]) -> Reply:
        question = self.lang.asks.get(intent, {}).get(slot, self.say("fallback"))
        initiator = {"type": INITIATOR_TYPE, "payload": {"intent": intent, "slot": slot, "slots": _encode_slots(slots)}}
        return Reply(question, expect=initiator)

    # ------------------------------------------------------------------------------------------ time

    def spoken_time(self, t: datetime.datetime) -> str:
        if self.settings.clock_24h:
            return f"{t.hour}:{t.minute:02d}"
        if t.hour == 12 and t.minute == 0:
            return str(self.lang.answers["noon"])
        if t.hour == 0 and t.minute == 0:
            return str(self.lang.answers["midnight"])
        am, pm = self.lang.answers["ampm"]
        hour = t.hour % 12 or 12
        minute = f":{t.minute:02d}" if t.minute else ""
        return f"{hour}{minute} {pm if t.hour >= 12 else am}"

    def spoken_duration(self, seconds: float) -> str:
        seconds = max(0, round(seconds))
        names = self.lang.data["words"]["unit_names"]
        parts: list[str] = []
        for unit in (3600, 60, 1):
            count, seconds = divmod(seconds, unit)
            if count:
                singular, plural = names[str(unit)]
                parts.append(f"{count} {singular if count == 1 else plural}")
        if not parts:
            return f"0 {names['1'][1]}"
        return f" {self.lang.answers['and']} ".join(parts[:2])

    def _on_GetTime(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(self.say("time", time=self.spoken_time(now)))

    def _on_GetDate(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        words = self.lang.data["words"]
        return Reply(
            self.say(
                "date",
                weekday=words["weekdays"][now.weekday()].capitalize(),
                month=words["months"][now.month - 1],
                day=now.day,
            )
        )

    # ------------------------------------------------------------------------------------------ timers

    @staticmethod
    def _timer_name(token: str) -> str:
        parts = token.split(".")
        return parts[2] if len(parts) >= 4 and parts[0] == TOKEN_PREFIX and parts[1] == "timer" else ""

    def _timers(self, state: DeviceState, name: str | None = None) -> list[AlertInfo]:
        timers = [a for a in state.alerts if a.type == "TIMER"]
        if name is not None:
            timers = [a for a in timers if self._timer_name(a.token) == name]
        return sorted(timers, key=lambda a: a.scheduled)

    def _on_SetTimer(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        duration = slots.get("duration")
        name = str(slots.get("timer_name", ""))
        if not isinstance(duration, Duration) or duration.seconds <= 0:
            return self._ask("SetTimer", "duration", slots)
        token = f"{TOKEN_PREFIX}.timer.{name}.{self._new_id()}"
        when = now + datetime.timedelta(seconds=duration.seconds)
        spoken = self.spoken_duration(duration.seconds)
        text = (
            self.say("named_timer_set", name=name.capitalize(), duration=spoken)
            if name
            else self.say("timer_set", duration=spoken)
        )
        alert = DirectiveSpec("Alerts", "SetAlert", {"token": token, "type": "TIMER", "scheduledTime": avs_time(when)})
        return Reply(text, (alert,))

    def _on_CancelTimer(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        name = slots.get("timer_name")
        timers = self._timers(state, str(name) if name else None)
        if not timers:
            return Reply(self.say("no_named_timer", name=name) if name else self.say("no_timer"))
        if name is None and len(timers) > 1 and "all" not in slots:
            # "cancel the timer" with several: the one that rings first (what people usually mean).
            timers = timers[:1]
        deletes = tuple(DirectiveSpec("Alerts", "DeleteAlert", {"token": t.token}) for t in timers)
        if len(timers) > 1:
            return Reply(self.say("timers_cancelled", count=len(timers)), deletes)
        if name:
            return Reply(self.say("named_timer_cancelled", name=str(name).capitalize()), deletes)
        return Reply(self.say("timer_cancelled"), deletes)

    def _timer_item(self, alert: AlertInfo, now: datetime.datetime) -> str:
        name = self._timer_name(alert.token)
        left = self.spoken_duration((alert.scheduled - now).total_seconds())
        return self.say("timer_item", name=f"{name} timer, " if name else "", left=left)

    def _on_ListTimers(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        timers = self._timers(state)
        if not timers:
            return Reply(self.say("no_timer"))
        items = ", ".join(self._timer_item(t, now) for t in timers)
        if len(timers) == 1:
            return Reply(self.say("timer_one", items=items))
        return Reply(self.say("timers_list", count=len(timers), items=items))

    def _on_TimeLeft(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        name = slots.get("timer_name")
        timers = self._timers(state, str(name) if name else None)
        if not timers:
            return Reply(self.say("no_named_timer", name=name) if name else self.say("no_timer"))
        if len(timers) > 1 and not name:
            return self._on_ListTimers(slots, state, now)
        left = self.spoken_duration((timers[0].scheduled - now).total_seconds())
        return Reply(self.say("time_left", left=left, name=f"{name} " if name else ""))

    # ------------------------------------------------------------------------------------------ alarms

    def alarm_time(self, clock: Clock, day: str | None, now: datetime.datetime) -> datetime.datetime:
        """The next time matching what was said (a bare "seven" is the next 7:00, AM or PM)."""
        weekdays = self.lang.data["words"]["weekdays"]
        hour = clock.hour % 12 + (12 if clock.meridiem == "pm" else 0) if clock.meridiem else clock.hour
        base = now.replace(second=0, microsecond=0)
        candidates: list[datetime.datetime] = []
        hours = [hour] if clock.meridiem or hour >= 12 or hour == 0 else [hour, hour + 12]
        start_day = 0
        if day == "tomorrow":
            start_day = 1
        elif day in weekdays:
            start_day = (weekdays.index(day) - now.weekday()) % 7
        for offset in range(start_day, start_day + 8):
            for h in hours:
                t = (base + datetime.timedelta(days=offset)).replace(hour=h % 24, minute=clock.minute)
                if t > now:
                    candidates.append(t)
            if candidates:
                break
        return min(candidates)

    def _on_SetAlarm(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        clock = slots.get("clock")
        if not isinstance(clock, Clock):
            return self._ask("SetAlarm", "clock", slots)
        day = slots.get("day") or slots.get("weekday")
        when = self.alarm_time(clock, str(day) if day else None, now)
        token = f"{TOKEN_PREFIX}.alarm.{self._new_id()}"
        if when.date() == now.date():
            spoken_day = self.lang.answers["today"]
        elif when.date() == now.date() + datetime.timedelta(days=1):
            spoken_day = self.lang.answers["tomorrow"]
        else:
            weekday = self.lang.data["words"]["weekdays"][when.weekday()].capitalize()
            spoken_day = self.say("on_day", day=weekday)
        alert = DirectiveSpec("Alerts", "SetAlert", {"token": token, "type": "ALARM", "scheduledTime": avs_time(when)})
        return Reply(self.say("alarm_set", time=self.spoken_time(when), when=spoken_day), (alert,))

    def _on_CancelAlarm(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        alarms = sorted((a for a in state.alerts if a.type == "ALARM"), key=lambda a: a.scheduled)
        if not alarms:
            return Reply(self.say("no_alarm"))
        chosen = alarms if "all" in slots else alarms[:1]
        deletes = tuple(DirectiveSpec("Alerts", "DeleteAlert", {"token": a.token}) for a in chosen)
        if len(chosen) > 1:
            return Reply(self.say("alarms_cancelled", count=len(chosen)), deletes)
        return Reply(self.say("alarm_cancelled"), deletes)

    # ------------------------------------------------------------------------------------------ volume, stop

    def _on_VolumeUp(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply("", (DirectiveSpec("Speaker", "AdjustVolume", {"volume": VOLUME_STEP}),))

    def _on_VolumeDown(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply("", (DirectiveSpec("Speaker", "AdjustVolume", {"volume": -VOLUME_STEP}),))

    def _on_SetVolume(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        level = slots.get("level")
        if not isinstance(level, int):
            return self._ask("SetVolume", "level", slots)
        if level > 10:
            return Reply(self.say("volume_bad"))
        return Reply(
            self.say("volume_set", level=level), (DirectiveSpec("Speaker", "SetVolume", {"volume": level * 10}),)
        )

    def _on_Mute(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply("", (DirectiveSpec("Speaker", "SetMute", {"mute": True}),))

    def _on_Unmute(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply("", (DirectiveSpec("Speaker", "SetMute", {"mute": False}),))

    def _on_Stop(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        """Stop what sounds: a ringing alert (deleted, as AVS does), else the music; else silence."""
        if state.active_alerts:
            return Reply("", tuple(DirectiveSpec("Alerts", "DeleteAlert", {"token": t}) for t in state.active_alerts))
        if state.player_activity in ("PLAYING", "BUFFER_UNDERRUN"):
            return Reply("", (DirectiveSpec("AudioPlayer", "Stop", {}),))
        return Reply("")

    def _on_Help(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(self.say("help"))

    def _on_Fallback(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(self.say("fallback"))

    def _on_Answer(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(self.say("fallback"))  # a bare "five minutes" nobody asked for

    # ------------------------------------------------------------------------------------------ music

    def _on_PlayMusic(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(music=f"play:{slots.get('music', '')}")

    def _on_Next(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(music="next")

    def _on_Previous(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(music="previous")

    def _on_Pause(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply("", (DirectiveSpec("AudioPlayer", "Stop", {}),))

    def _on_Resume(self, slots: Mapping[str, SlotValue], state: DeviceState, now: datetime.datetime) -> Reply:
        return Reply(music="resume")


def _encode_slots(slots: Mapping[str, SlotValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in slots.items():
        if isinstance(value, Duration):
            out[key] = {"duration": value.seconds}
        elif isinstance(value, Clock):
            out[key] = {"clock": [value.hour, value.minute, value.meridiem]}
        else:
            out[key] = value
    return out


def _decode_slots(raw: Mapping[str, Any]) -> dict[str, SlotValue]:
    out: dict[str, SlotValue] = {}
    for key, value in raw.items():
        if isinstance(value, Mapping) and isinstance(value.get("duration"), int):
            out[key] = Duration(value["duration"])
        elif isinstance(value, Mapping) and isinstance(value.get("clock"), list) and len(value["clock"]) == 3:
            hour, minute, meridiem = value["clock"]
            if isinstance(hour, int) and isinstance(minute, int):
                out[key] = Clock(hour, minute, meridiem if meridiem in ("am", "pm") else None)
        elif isinstance(value, int | str):
            out[key] = value
    return out
