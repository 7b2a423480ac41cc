"""Alerts 1.1 (protocol reference §6.6): timers, alarms and reminders that ring with or without a network.

The rules live in :mod:`avsd.agents.alert_schedule` (pure); this module does what they say:

- ``SetAlert``: decide (new / update / snooze / past due), store the alert (fsynced, SQLite WAL) and only then
  queue ``SetAlertSucceeded``; ``DeleteAlert``: stop it if sounding, delete, ``DeleteAlertSucceeded``.
- A scheduler task asks :func:`~avsd.agents.alert_schedule.plan` what is due, sounds it, and sleeps until the
  next thing can happen (or a directive / the user changes the set).
- Sounding: the alert's first asset when it starts within ``asset_timeout_s``, else (or when it fails, or when
  there is none) a built-in beep pattern generated here, so an alarm rings with no network at all.
- Set/Delete Succeeded/Failed, AlertStarted and AlertStopped go through the certified outbox (stored, delivered
  in order after a reconnect); AlertEnteredForeground/Background are ordinary events (dropped offline, as the
  SDK does).
- AlertStarted and AlertStopped keep their messageId across restarts: it is derived from the alert's token
  and scheduled time (:func:`ring_message_id`), so the ring that a ``kill -9`` interrupted and the next process
  resumes is the same message, and the outbox stores it only once. AlertStopped is queued *before* the alert
  leaves the store; an alert found stored whose AlertStopped was already queued is gone, not rung again.
- Focus: a sounding alert holds the ALERTS channel; while a dialog runs it is in the background (attenuated,
  ``AlertEnteredBackground``) and comes back to the foreground when the dialog ends. The user stops it with
  :meth:`AlertsAgent.stop_active` (button, ``avsd stop``) or by voice (the cloud sends DeleteAlert).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import math
import struct
import uuid
import wave
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from avsd.agents.alert_schedule import (
    Alert,
    AlertScheduleSettings,
    AlertState,
    SetOutcome,
    alert_from_directive,
    alerts_state,
    decide_set,
    plan,
    recover,
    started,
)
from avsd.agents.alert_store import AlertStore
from avsd.agents.events import EventSender
from avsd.avs.messages import Directive, Event, Header, context_entry
from avsd.errors import DirectiveParseError, PlaybackError
from avsd.focus import Behavior, Channel, FocusChange, FocusState
from avsd.observers import Observers
from avsd.playback.base import Media, PlaybackOutcome, Player
from avsd.settings import setting

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "Alerts"
ACTIVITY_ID = "Alerts"  # the focus activity (SDK: the interface name)


@dataclass(frozen=True, slots=True)
class AlertsSettings:
    past_due_cutoff_s: float = setting(
        1800.0, "an alert later than this (seconds) is dropped, not sounded", min=0.0, max=86400.0
    )
    max_ring_s: float = setting(3600.0, "an alert nobody stops is stopped after this (seconds)", min=1.0, max=86400.0)
    asset_timeout_s: float = setting(
        2.0,
        "a remote alert sound not playing within this (seconds) falls back to the built-in sound",
        min=0.1,
        max=30.0,
    )
    pause_s: float = setting(0.6, "silence between repeats of the built-in sound (seconds)", min=0.0, max=30.0)
    volume: int = setting(80, "volume (0-100) of a sounding alert", min=0, max=100)
    background_volume: int = setting(20, "volume (0-100) of an alert while a dialog runs over it", min=0, max=100)

    def schedule(self) -> AlertScheduleSettings:
        return AlertScheduleSettings(past_due_cutoff_s=self.past_due_cutoff_s, max_ring_s=self.max_ring_s)


class FocusPort(Protocol):
    """The focus arbiter (``avsd.agents.focus_agent.FocusArbiter``): changes come back through ``on_focus``."""

    def acquire(self, channel: Channel, activity_id: str) -> FocusState: ...

    def release(self, channel: Channel, activity_id: str) -> None: ...


class CertifiedSender(Protocol):
    """The outbox: ``put`` returns once the event is stored; it is delivered whenever AVS is reachable."""

    async def put(self, event_json: bytes) -> None: ...

    def seen(self, message_id: str) -> bool:
        """True if an event with this messageId was queued (waiting or recently delivered)."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- the built-in sound -------------------------------------------------------------------------------------


def alarm_sound_wav(rate: int = 16000) -> bytes:
    """A beep pattern as a WAV (about 1.3 s, 16-bit mono): four short 880/1320 Hz beeps, then a rest.

    Generated rather than shipped so the device can always ring, whatever is (not) on disk.
    """
    samples: list[int] = []
    for n in range(4):
        freq = 880.0 if n % 2 == 0 else 1320.0
        beep = int(rate * 0.12)
        for i in range(beep):
            # 5 ms fade in/out: no clicks.
            env = min(1.0, i / (rate * 0.005), (beep - i) / (rate * 0.005))
            samples.append(int(12000 * env * math.sin(2 * math.pi * freq * i / rate)))
        samples.extend([0] * int(rate * 0.08))
    samples.extend([0] * int(rate * 0.5))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


ALARM_SOUND = alarm_sound_wav()
ALARM_SOUND_S = (len(ALARM_SOUND) - 44) / 2 / 16000


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def builtin_media() -> Media:
    return Media.stream(_chunks(ALARM_SOUND), mime="audio/wav")


# -- events ----------------------------------------------------------------------------------------------------


def alert_event(name: str, token: str, message_id: str | None = None) -> Event:
    if message_id is None:
        return Event.new(NAMESPACE, name, {"token": token})
    return Event(Header(NAMESPACE, name, message_id), {"token": token})


# A fixed namespace for uuid5: any constant works; this one is uuid5(NAMESPACE_URL, "urn:avsd:alerts").
_RING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:avsd:alerts")


def ring_message_id(name: str, alert: Alert) -> str:
    """The messageId of AlertStarted / AlertStopped for one ring of ``alert``: the same in every process.

    A snooze (SetAlert with a new scheduledTime) is a new ring, with new ids.
    """
    key = f"{name}\n{alert.token}\n{alert.scheduled_time.isoformat()}"
    return str(uuid.uuid5(_RING_NAMESPACE, key))


def event_from_json(body: bytes) -> Event:
    """An outbox entry back into an Event, keeping its messageId (a re-send is the same message)."""
    doc = json.loads(body)
    event = doc["event"]
    header = event["header"]
    return Event(
        Header(header["namespace"], header["name"], header["messageId"], header.get("dialogRequestId")),
        dict(event.get("payload") or {}),
        doc.get("context"),
    )


# -- the agent -------------------------------------------------------------------------------------------------


class AlertsAgent:
    def __init__(
        self,
        *,
        store: AlertStore,
        certified: CertifiedSender,
        events: EventSender,
        player: Player,
        settings: AlertsSettings | None = None,
        focus: FocusPort | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._focus = focus
        self._store = store
        self._certified = certified
        self._events = events
        self._player = player
        self._settings = settings or AlertsSettings()
        self._schedule = self._settings.schedule()
        self._clock = clock
        self._alerts: dict[str, Alert] = {}
        self._loaded = False
        self._wakeup = asyncio.Event()
        self._ring_task: asyncio.Task[None] | None = None
        self._ringing: str | None = None
        self._background = False
        self._announced = False  # AlertStarted queued: focus events may follow it
        self._dialog_active = False
        self._lock = asyncio.Lock()  # directives, the scheduler and the user change the set one at a time
        # (token, wall time the first sample left the player): for logs, status and tests.
        self.sounded: deque[tuple[str, datetime]] = deque(maxlen=32)
        self.ringing_observers: Observers[str | None] = Observers("alert ringing")

    # ----- start-up -----------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the store; alerts sounding at power loss are set back to SET (§6.6). Idempotent."""
        if self._loaded:
            return
        stored = await self._store.all()
        for alert in [a for a in stored if self._certified.seen(ring_message_id("AlertStopped", a))]:
            # Killed between queuing AlertStopped and deleting the alert: it is over; do not ring it again.
            _LOGGER.info("alert %s was stopped before the restart; forgetting it", alert.token)
            await self._store.delete(alert.token)
            stored.remove(alert)
        recovered = recover(stored)
        if recovered != stored:
            await self._store.replace_all(recovered)
        self._alerts = {a.token: a for a in recovered}
        self._loaded = True
        _LOGGER.info("alerts: %d stored alert(s) loaded", len(self._alerts))

    # ----- DirectiveHandler ---------------------------------------------------------------------------------

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, "SetAlert"), (NAMESPACE, "DeleteAlert")}

    def blocking(self, directive: Directive) -> bool:
        return False

    async def handle(self, directive: Directive) -> None:
        await self.load()
        if directive.name == "SetAlert":
            await self._set_alert(directive)
        else:
            await self._delete_alert(directive)

    async def cancel(self, directive: Directive) -> None:
        # An alert, once set, belongs to the user, not to the dialog that set it: nothing to undo.
        return None

    async def _set_alert(self, directive: Directive) -> None:
        try:
            incoming = alert_from_directive(directive)
        except DirectiveParseError:
            token = directive.payload.get("token")
            if isinstance(token, str) and token:
                await self._send_certified("SetAlertFailed", token)
            raise  # the sequencer reports ExceptionEncountered
        async with self._lock:
            decision = decide_set(self._alerts.get(incoming.token), incoming, self._clock(), self._schedule)
            if decision.outcome is SetOutcome.PAST_DUE:
                _LOGGER.warning("SetAlert %s: %s is past due; refused", incoming.token, incoming.scheduled_time)
                await self._send_certified("SetAlertFailed", incoming.token)
                return
            if decision.outcome is SetOutcome.SNOOZED:
                _LOGGER.info("alert %s snoozed until %s", incoming.token, incoming.scheduled_time)
                await self._silence(incoming.token)
            # Stored (fsynced) before AVS hears it succeeded: a crash in between loses nothing (§6.6).
            await self._store.put(decision.alert)
            self._alerts[incoming.token] = decision.alert
            _LOGGER.info(
                "alert %s %s: %s at %s", incoming.token, decision.outcome, incoming.type, incoming.scheduled_time
            )
            await self._send_certified("SetAlertSucceeded", incoming.token)
        self._wakeup.set()

    async def _delete_alert(self, directive: Directive) -> None:
        token = directive.payload.get("token")
        if not isinstance(token, str) or not token:
            raise DirectiveParseError("DeleteAlert without a token", directive.raw)
        async with self._lock:
            alert = self._alerts.get(token)
            if alert is None:
                # The SDK answers success for an unknown token, so AVS and the device agree it is gone.
                _LOGGER.info("DeleteAlert %s: no such alert", token)
            else:
                await self._finish(alert, "deleted")
            await self._send_certified("DeleteAlertSucceeded", token)
        self._wakeup.set()

    # ----- user control -------------------------------------------------------------------------------------

    @property
    def active_token(self) -> str | None:
        return self._ringing

    async def stop_active(self) -> str | None:
        """The user stopped the sounding alert (button, ``avsd stop``): AlertStopped. Returns its token."""
        async with self._lock:
            token = self._ringing
            alert = self._alerts.get(token) if token else None
            if alert is None:
                return None
            await self._finish(alert, "stopped by the user")
        self._wakeup.set()
        return token

    def set_dialog_active(self, active: bool) -> None:
        """The dialog took (True) or gave back (False) the DIALOG channel: a sounding alert goes to the
        background / foreground (§7.2). Only used without a focus arbiter (which calls :meth:`on_focus`)."""
        self._dialog_active = active
        if self._focus is None:
            self._apply_focus(background=active)

    def on_focus(self, change: FocusChange) -> None:
        """A focus change for the ALERTS activity; returns at once."""
        if change.behavior is Behavior.STOP:
            if self._ringing is not None:  # taken away by someone else (not our own release)
                asyncio.get_running_loop().create_task(self.stop_active(), name="alert-focus-stop")
        else:
            self._apply_focus(background=change.behavior is not Behavior.PLAY)

    def _apply_focus(self, *, background: bool) -> None:
        if background == self._background:
            return
        self._background = background
        self._player.set_volume(self._settings.background_volume if background else self._settings.volume)
        if self._ringing is not None and self._announced:
            name = "AlertEnteredBackground" if background else "AlertEnteredForeground"
            self._events.send(alert_event(name, self._ringing))

    async def ring_out(self, *, stop_after_s: float, on_ring: Callable[[str], None] | None = None) -> None:
        """``avsd demo``: return once no alert is stored, stopping each sounding one after ``stop_after_s`` (the
        demo's stand-in for the user's button). Bound it with a timeout: an alert far ahead keeps it waiting."""
        while self._alerts:
            token = self._ringing
            if token is None:
                await asyncio.sleep(0.05)
                continue
            if on_ring is not None:
                on_ring(token)
            await asyncio.sleep(stop_after_s)
            if self._ringing == token:
                await self.stop_active()

    # ----- context ------------------------------------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        return context_entry(NAMESPACE, "AlertsState", alerts_state(self._alerts.values()))

    @property
    def alerts(self) -> list[Alert]:
        return sorted(self._alerts.values(), key=lambda a: (a.scheduled_time, a.token))

    # ----- scheduler ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.load()
        try:
            while True:
                self._wakeup.clear()
                async with self._lock:
                    wake_in = await self._tick()
                if wake_in is not None:
                    _LOGGER.debug("alerts: next check in %.3f s", wake_in)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wake_in):
                        await self._wakeup.wait()
        finally:
            await self._silence(self._ringing)

    async def _tick(self) -> float | None:
        now = self._clock()
        todo = plan(list(self._alerts.values()), now, self._schedule)
        for alert in todo.expire:
            await self._finish(alert, f"rang for {self._schedule.max_ring_s:.0f} s")
        for alert in todo.drop:
            await self._finish(alert, "past due")
        if todo.start is not None:
            await self._start(started(todo.start, now))
        return todo.wake_in_s

    async def _start(self, alert: Alert) -> None:
        # Sound first: timing is what the user notices; the store and the event follow at once.
        self._alerts[alert.token] = alert
        self._ringing = alert.token
        self._announced = False
        self._background = False
        self._player.set_volume(self._settings.volume)
        if self._focus is not None:
            self._focus.acquire(Channel.ALERTS, ACTIVITY_ID)  # -> on_focus: BACKGROUND while a dialog runs
        else:
            self._apply_focus(background=self._dialog_active)
        self._ring_task = asyncio.get_running_loop().create_task(self._ring(alert), name=f"alert-{alert.token}")
        _LOGGER.info("alert %s (%s) sounding, scheduled %s", alert.token, alert.type, alert.scheduled_time)
        self._notify()
        await self._store.put(alert)
        await self._send_certified("AlertStarted", alert.token, ring_message_id("AlertStarted", alert))
        self._announced = True
        if self._background and self._ringing == alert.token:
            self._events.send(alert_event("AlertEnteredBackground", alert.token))

    async def _finish(self, alert: Alert, why: str) -> None:
        """Stop (if sounding), forget, and report AlertStopped — also for alerts that never sounded (§6.6)."""
        _LOGGER.info("alert %s stopped: %s", alert.token, why)
        await self._silence(alert.token)
        self._alerts.pop(alert.token, None)
        # Queued before the delete: a crash in between leaves a stored alert whose AlertStopped is known (load()).
        await self._send_certified("AlertStopped", alert.token, ring_message_id("AlertStopped", alert))
        await self._store.delete(alert.token)

    async def _silence(self, token: str | None) -> None:
        """Stop the sound of ``token`` if it is the one sounding (no event)."""
        if token is None or token != self._ringing:
            return
        task, self._ring_task, self._ringing = self._ring_task, None, None
        if self._focus is not None:
            self._focus.release(Channel.ALERTS, ACTIVITY_ID)
        if token in self._alerts and self._alerts[token].state is AlertState.ACTIVE:
            self._alerts[token] = replace(self._alerts[token], state=AlertState.SET)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._notify()

    def _notify(self) -> None:
        self.ringing_observers.notify(self._ringing)

    async def _send_certified(self, name: str, token: str, message_id: str | None = None) -> None:
        await self._certified.put(alert_event(name, token, message_id).to_json())

    # ----- sounding -----------------------------------------------------------------------------------------

    def _asset_url(self, alert: Alert) -> str | None:
        by_id = {a.asset_id: a.url for a in alert.assets}
        for asset_id in alert.asset_play_order:
            if asset_id in by_id:
                return by_id[asset_id]
        return alert.assets[0].url if alert.assets else None

    async def _ring(self, alert: Alert) -> None:
        """Play until cancelled (stop, delete, snooze, max ring time: the scheduler decides)."""
        loop = asyncio.get_running_loop()
        url = self._asset_url(alert)
        first = True
        loops_left = alert.loop_count
        while True:
            builtin = url is None
            media = builtin_media() if builtin else Media.from_url(url or "")
            began = loop.time()
            playback = self._player.play(media)
            try:
                try:
                    async with asyncio.timeout(None if builtin else self._settings.asset_timeout_s):
                        await playback.started()
                except (TimeoutError, PlaybackError) as exc:
                    _LOGGER.warning("alert %s: sound %s did not start (%s); using the built-in sound",
                                    alert.token, media.describe(), exc or "timeout")
                    await playback.stop()
                    url = None
                    continue
                if first:
                    first = False
                    self.sounded.append((alert.token, self._clock()))
                outcome = await playback.finished()
            except asyncio.CancelledError:
                await playback.stop()
                raise
            if outcome is PlaybackOutcome.FAILED and not builtin:
                url = None
                continue
            if not builtin and loops_left is not None:
                loops_left -= 1
                if loops_left <= 0:
                    url = None  # assets done; the built-in sound carries on until stopped (SDK behaviour)
            pause = alert.loop_pause_ms / 1000.0 if not builtin else self._settings.pause_s
            # Pace by the sound's own length too: the WAV sink "plays" faster than real time.
            length = ALARM_SOUND_S if builtin else 0.0
            await asyncio.sleep(max(pause, began + length + pause - loop.time()))


__all__ = [
    "ALARM_SOUND",
    "AlertsAgent",
    "AlertsSettings",
    "CertifiedSender",
    "alarm_sound_wav",
    "builtin_media",
    "event_from_json",
]
