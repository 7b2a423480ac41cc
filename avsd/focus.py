"""Audio focus: Dialog > Alerts > Content arbitration (protocol reference §7). Pure, no I/O, no clock.

Each channel is held by at most one *activity* (an opaque id chosen by the agent, e.g. "SpeechSynthesizer").
Only the highest-priority held channel is FOREGROUND; every other held channel is BACKGROUND. ``acquire`` and
``release`` return the focus changes the caller must apply, in the order to apply them: activities losing
focus first (so music pauses before speech starts), then the one gaining it.

SDK semantics kept here (FocusManager.cpp):
- re-acquiring a channel held by a *different* activity sends NONE to the previous holder first;
- releasing sends NONE to the releasing activity, then promotes the next highest channel;
- releasing with an activity that does not hold the channel changes nothing.

What an activity does on BACKGROUND is carried in ``FocusChange.behavior``: Content pauses or ducks (setting
``content_policy``); Alerts switch to their attenuated background rendering (``AlertEnteredBackground``).

Ducking (``DuckableVolume``) restores the volume the user has *now*, not the one before ducking: a SetVolume
while ducked updates ``user_volume`` and the output stays ducked; un-ducking yields the current
``user_volume``; ducking twice is the same as ducking once (field-notes §2: ViewAssist #213,
view_assist #199).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Channel(StrEnum):
    DIALOG = "dialog"
    ALERTS = "alerts"
    CONTENT = "content"

    @property
    def priority(self) -> int:
        """SDK priority value; lower number = higher priority (``FocusManagerInterface.h``)."""
        return _PRIORITY[self]


_PRIORITY = {Channel.DIALOG: 100, Channel.ALERTS: 200, Channel.CONTENT: 300}
_BY_PRIORITY = sorted(Channel, key=lambda c: c.priority)


class FocusState(StrEnum):
    FOREGROUND = "FOREGROUND"
    BACKGROUND = "BACKGROUND"
    NONE = "NONE"


class Behavior(StrEnum):
    """What the activity should do for its new focus state."""

    PLAY = "play"  # FOREGROUND: render normally (resume if paused, un-duck if ducked)
    PAUSE = "pause"  # BACKGROUND, content policy "pause"
    DUCK = "duck"  # BACKGROUND, content policy "duck"; alerts always attenuate rather than pause
    STOP = "stop"  # NONE: stop and forget (content: PlaybackStopped + clear queue; alerts: AlertStopped)


class ContentPolicy(StrEnum):
    PAUSE = "pause"
    DUCK = "duck"


@dataclass(frozen=True, slots=True)
class FocusSettings:
    content_policy: ContentPolicy = field(
        default=ContentPolicy.PAUSE,
        metadata={
            "help": "what music does while Alexa speaks or an alert sounds",
            "choices": tuple(ContentPolicy),
        },
    )
    duck_level: int = field(
        default=20,
        metadata={"help": "volume (0-100) of ducked content; never raises the volume", "min": 0, "max": 100},
    )


@dataclass(frozen=True, slots=True)
class FocusChange:
    activity_id: str
    channel: Channel
    focus: FocusState
    behavior: Behavior


class FocusManager:
    """Which activity holds which channel. Methods return the changes to apply; nothing is called back."""

    def __init__(self, settings: FocusSettings | None = None) -> None:
        self._settings = settings or FocusSettings()
        self._holders: dict[Channel, str] = {}

    @property
    def settings(self) -> FocusSettings:
        return self._settings

    def holder(self, channel: Channel) -> str | None:
        return self._holders.get(channel)

    def foreground(self) -> Channel | None:
        for channel in _BY_PRIORITY:
            if channel in self._holders:
                return channel
        return None

    def focus_of(self, channel: Channel) -> FocusState:
        if channel not in self._holders:
            return FocusState.NONE
        return FocusState.FOREGROUND if self.foreground() is channel else FocusState.BACKGROUND

    def snapshot(self) -> dict[Channel, tuple[str, FocusState]]:
        return {c: (a, self.focus_of(c)) for c, a in self._holders.items()}

    def acquire(self, channel: Channel, activity_id: str) -> list[FocusChange]:
        if self._holders.get(channel) == activity_id:
            return []
        before = self.snapshot()
        self._holders[channel] = activity_id
        return self._diff(before)

    def release(self, channel: Channel, activity_id: str) -> list[FocusChange]:
        if self._holders.get(channel) != activity_id:
            return []
        before = self.snapshot()
        del self._holders[channel]
        return self._diff(before)

    def stop_foreground(self) -> list[FocusChange]:
        """The user pressed stop: the foreground activity gets NONE, the next channel comes forward."""
        channel = self.foreground()
        if channel is None:
            return []
        return self.release(channel, self._holders[channel])

    def stop_all(self) -> list[FocusChange]:
        before = self.snapshot()
        self._holders.clear()
        return self._diff(before)

    def _behavior(self, channel: Channel, focus: FocusState) -> Behavior:
        if focus is FocusState.FOREGROUND:
            return Behavior.PLAY
        if focus is FocusState.NONE:
            return Behavior.STOP
        if channel is Channel.CONTENT and self._settings.content_policy is ContentPolicy.PAUSE:
            return Behavior.PAUSE
        # Alerts in the background keep sounding attenuated (SDK: short sound with pauses); Dialog can only be
        # backgrounded by a higher channel, which does not exist among the three default channels.
        return Behavior.DUCK

    def _diff(self, before: dict[Channel, tuple[str, FocusState]]) -> list[FocusChange]:
        after = self.snapshot()
        losing: list[FocusChange] = []
        gaining: list[FocusChange] = []
        for channel in _BY_PRIORITY:
            old = before.get(channel)
            new = after.get(channel)
            if old is not None and (new is None or new[0] != old[0]):
                losing.append(self._change(old[0], channel, FocusState.NONE))
            if new is None:
                continue
            old_focus = old[1] if old is not None and old[0] == new[0] else FocusState.NONE
            if new[1] == old_focus:
                continue
            target = gaining if new[1] is FocusState.FOREGROUND else losing
            target.append(self._change(new[0], channel, new[1]))
        return losing + gaining

    def _change(self, activity_id: str, channel: Channel, focus: FocusState) -> FocusChange:
        return FocusChange(activity_id, channel, focus, self._behavior(channel, focus))


@dataclass(frozen=True, slots=True)
class DuckableVolume:
    """Output volume of one player: what the user/AVS set, and whether focus has ducked it.

    ``user_volume`` is the Speaker volume reported to AVS (VolumeState); ``effective`` is what the sink
    plays at.
    Ducking never raises the volume: a user at 10 with ``duck_level`` 20 stays at 10.
    """

    user_volume: int = 50
    duck_level: int = 20
    ducked: bool = False
    muted: bool = False

    @property
    def effective(self) -> int:
        if self.muted:
            return 0
        return min(self.duck_level, self.user_volume) if self.ducked else self.user_volume

    def set_volume(self, volume: int) -> DuckableVolume:
        # Clamp like the SDK's SpeakerManager; SetVolume also unmutes (protocol reference §6.5).
        return replace(self, user_volume=max(0, min(100, volume)), muted=False)

    def adjust_volume(self, delta: int) -> DuckableVolume:
        return self.set_volume(self.user_volume + delta)

    def set_mute(self, muted: bool) -> DuckableVolume:
        return replace(self, muted=muted)

    def duck(self) -> DuckableVolume:
        return replace(self, ducked=True)

    def unduck(self) -> DuckableVolume:
        return replace(self, ducked=False)

    def apply(self, behavior: Behavior) -> DuckableVolume:
        """Follow a focus change: DUCK ducks, PLAY un-ducks, PAUSE/STOP leave the volume alone."""
        if behavior is Behavior.DUCK:
            return self.duck()
        if behavior is Behavior.PLAY:
            return self.unduck()
        return self
