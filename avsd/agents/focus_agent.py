"""The glue between the pure :class:`~avsd.focus.FocusManager` and the activities that render audio (§7).

:class:`FocusArbiter` owns the FocusManager, lets agents acquire and release channels, and hands every resulting
:class:`~avsd.focus.FocusChange` to the activity it concerns, in the order the manager returned them (losers
first, so music pauses before speech starts). Activities react in ``on_focus``, which must not block: an agent
that has async work to do (pausing a player) schedules it on its own, serialized, task.

:class:`DialogFocus` holds the DIALOG channel while the dialog is busy: from the moment the device starts
listening (wake word, button, ExpectSpeech) through thinking and speaking, and while any Speak plays (a
cloud-initiated Speak arrives while the dialog is IDLE). It is fed by the dialog state machine's observer and by
the SpeechSynthesizer; when neither needs it, the channel is released and whatever was paused resumes.
"""

from __future__ import annotations

import logging
from typing import Protocol

from avsd.focus import Channel, FocusChange, FocusManager, FocusSettings, FocusState
from avsd.state import DialogState, Transition

_LOGGER = logging.getLogger(__name__)

DIALOG_ACTIVITY = "SpeechSynthesizer"  # the interface AudioActivityTracker would name for the dialog channel
_DIALOG_BUSY = frozenset({DialogState.LISTENING, DialogState.THINKING, DialogState.SPEAKING, DialogState.EXPECTING})


class FocusActivity(Protocol):
    def on_focus(self, change: FocusChange) -> None:
        """Apply a focus change; must return at once (schedule async work)."""
        ...


class FocusArbiter:
    """Channels for the agents; focus changes go to the registered activities, synchronously."""

    def __init__(self, settings: FocusSettings | None = None) -> None:
        self.manager = FocusManager(settings)
        self._activities: dict[str, FocusActivity] = {}
        self.history: list[FocusChange] = []  # bounded below; for logs and tests
        self._history_max = 256

    @property
    def settings(self) -> FocusSettings:
        return self.manager.settings

    def register(self, activity_id: str, activity: FocusActivity) -> None:
        self._activities[activity_id] = activity

    def acquire(self, channel: Channel, activity_id: str) -> FocusState:
        """Take ``channel`` for ``activity_id``; returns the focus the channel has now."""
        self._apply(self.manager.acquire(channel, activity_id))
        return self.manager.focus_of(channel)

    def release(self, channel: Channel, activity_id: str) -> None:
        self._apply(self.manager.release(channel, activity_id))

    def focus_of(self, channel: Channel) -> FocusState:
        return self.manager.focus_of(channel)

    def holds(self, channel: Channel, activity_id: str) -> bool:
        return self.manager.holder(channel) == activity_id

    def stop_foreground(self) -> None:
        self._apply(self.manager.stop_foreground())

    def _apply(self, changes: list[FocusChange]) -> None:
        for change in changes:
            _LOGGER.info("focus: %s %s -> %s (%s)", change.channel, change.activity_id, change.focus, change.behavior)
            self.history.append(change)
            if len(self.history) > self._history_max:
                del self.history[0]
            activity = self._activities.get(change.activity_id)
            if activity is None:
                continue
            try:
                activity.on_focus(change)
            except Exception:
                # One broken activity must not keep the others from hearing about their focus.
                _LOGGER.exception("focus change for %s failed", change.activity_id)


class DialogFocus:
    """Holds the DIALOG channel while any reason to hold it is active ("dialog", "speech")."""

    def __init__(self, arbiter: FocusArbiter, activity_id: str = DIALOG_ACTIVITY) -> None:
        self._arbiter = arbiter
        self._activity_id = activity_id
        self._reasons: set[str] = set()

    @property
    def held(self) -> bool:
        return bool(self._reasons)

    def hold(self, reason: str) -> None:
        was_held = self.held
        self._reasons.add(reason)
        if not was_held:
            self._arbiter.acquire(Channel.DIALOG, self._activity_id)

    def release(self, reason: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons:
            self._arbiter.release(Channel.DIALOG, self._activity_id)

    def on_transition(self, transition: Transition) -> None:
        """Dialog state observer: LISTENING / THINKING / SPEAKING / EXPECTING hold the channel."""
        if transition.state in _DIALOG_BUSY:
            self.hold("dialog")
        else:
            self.release("dialog")

    # Speech observer hooks (SpeechSynthesizer calls them around a Speak).
    def speech_starting(self) -> None:
        self.hold("speech")

    def speech_ended(self) -> None:
        self.release("speech")

    def on_focus(self, change: FocusChange) -> None:
        # Dialog is the top channel: it only loses focus when someone re-acquires it, which nobody does today.
        if change.focus is FocusState.NONE:
            self._reasons.clear()


__all__ = ["DIALOG_ACTIVITY", "DialogFocus", "FocusActivity", "FocusArbiter"]
