"""The device's dialog state machine: states, triggers and one transition table. Pure: no I/O, no clock.

    IDLE -> LISTENING -> THINKING -> SPEAKING -> IDLE
                 ^                       |
                 +------ EXPECTING <-----+   (ExpectSpeech opens the mic again after the Speak)

plus MUTED (privacy: microphone closed) and OFFLINE (no AVS connection; button and local features still work).

Whether the device is muted or online is not a dialog state but a fact the dialog returns to: a table entry whose
target is ``REST`` lands in MUTED when muted, else OFFLINE when offline, else IDLE. Every state except IDLE and
MUTED has a timeout (``DialogTimeouts``) so the device can never get stuck listening or thinking; the timeout of
OFFLINE re-checks the connection fact.

Every (state, trigger) pair is one of three kinds: a transition (:data:`TABLE`), an expected no-op (:data:`IGNORED`:
news that arrives after the dialog moved on, such as a Speak that ends after a barge-in, or a repeated fact), or
unexpected (neither): the machine logs it and counts it, because it means a caller's guard and the table disagree.

The connection fact has one owner (the AVS client); the machine reads it through ``connected()`` instead of keeping
a copy. The muted fact is the machine's own (MUTE_TOGGLE flips it). A state may carry data that lives exactly as
long as the state (EXPECTING carries its ExpectSpeech's initiator and voice detector): :attr:`DialogMachine.data`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from avsd.observers import Observers

_LOGGER = logging.getLogger(__name__)


class DialogState(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    EXPECTING = "expecting"
    MUTED = "muted"
    OFFLINE = "offline"


class Trigger(StrEnum):
    WAKE_WORD = "wake_word"  # the wake-word engine fired
    BUTTON_TAP = "button_tap"  # TAP dialog
    BUTTON_HOLD = "button_hold"  # PRESS_AND_HOLD dialog starts
    CAPTURE_DONE = "capture_done"  # end of speech (local), StopCapture (cloud), button release, length cap
    NO_SPEECH = "no_speech"  # nobody spoke before the no-speech timeout
    SPEECH_HEARD = "speech_heard"  # the user started speaking while the mic was open for ExpectSpeech
    SPEECH_STARTED = "speech_started"  # a Speak began playing
    SPEECH_FINISHED = "speech_finished"  # a Speak ended (finished or stopped)
    EXPECT_SPEECH = "expect_speech"  # ExpectSpeech directive runs
    DIALOG_DONE = "dialog_done"  # the answer had nothing (more) to do
    STOP = "stop"  # the user said stop (button tap while speaking, `avsd stop`)
    FAILED = "failed"  # the Recognize failed (AVS error, connection lost)
    TIMEOUT = "timeout"  # the state's timeout expired
    MUTE_TOGGLE = "mute_toggle"  # privacy button
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


S, T = DialogState, Trigger
REST: Final = "rest"  # symbolic target: IDLE, OFFLINE or MUTED depending on the facts
Target = DialogState | str

_NEW_DIALOG: Mapping[Trigger, Target] = {
    T.WAKE_WORD: S.LISTENING,
    T.BUTTON_TAP: S.LISTENING,
    T.BUTTON_HOLD: S.LISTENING,
}
_ABORT: Mapping[Trigger, Target] = {
    T.FAILED: REST,
    T.TIMEOUT: REST,
    T.STOP: REST,
    T.MUTE_TOGGLE: S.MUTED,
    T.DISCONNECTED: REST,
}

TABLE: Mapping[DialogState, Mapping[Trigger, Target]] = {
    S.IDLE: {
        **_NEW_DIALOG,
        T.SPEECH_STARTED: S.SPEAKING,  # cloud-initiated Speak (downchannel)
        T.EXPECT_SPEECH: S.EXPECTING,
        T.MUTE_TOGGLE: S.MUTED,
        T.DISCONNECTED: S.OFFLINE,
    },
    S.LISTENING: {
        **_ABORT,
        T.CAPTURE_DONE: S.THINKING,
        T.NO_SPEECH: REST,
    },
    S.THINKING: {
        **_ABORT,
        **_NEW_DIALOG,  # a new dialog cancels the one waiting for its answer
        T.SPEECH_STARTED: S.SPEAKING,
        T.EXPECT_SPEECH: S.EXPECTING,  # ExpectSpeech without a Speak before it
        T.DIALOG_DONE: REST,
    },
    S.SPEAKING: {
        **_ABORT,
        **_NEW_DIALOG,  # barge-in
        T.SPEECH_FINISHED: REST,
        T.EXPECT_SPEECH: S.EXPECTING,
    },
    S.EXPECTING: {
        **_ABORT,
        **_NEW_DIALOG,
        T.SPEECH_HEARD: S.LISTENING,
        T.NO_SPEECH: REST,
    },
    S.MUTED: {
        T.MUTE_TOGGLE: REST,
    },
    S.OFFLINE: {
        T.CONNECTED: S.IDLE,
        T.MUTE_TOGGLE: S.MUTED,
        T.TIMEOUT: REST,  # re-check the connection fact, in case a CONNECTED was missed
        T.SPEECH_STARTED: S.SPEAKING,  # a Speak that arrived just before the connection dropped
    },
}


# News that can arrive after the dialog it belongs to has moved on (a Speak ending after a barge-in or a stop, the
# answer of a dialog the user abandoned, a failure reported after a disconnect) and a repeated connection fact.
_LATE = frozenset({T.SPEECH_FINISHED, T.DIALOG_DONE, T.FAILED, T.CONNECTED})
_IGNORED_EXTRA: Mapping[DialogState, frozenset[Trigger]] = {
    S.IDLE: frozenset(),
    # A cloud-initiated Speak (downchannel, no dialogRequestId) may start while the mic is open; it plays, and
    # the capture goes on.
    S.LISTENING: frozenset({T.SPEECH_STARTED}),
    S.THINKING: frozenset(),
    S.SPEAKING: frozenset({T.SPEECH_STARTED}),  # the next Speak of the same answer
    S.EXPECTING: frozenset({T.SPEECH_STARTED}),
    S.MUTED: frozenset({T.SPEECH_STARTED, T.DISCONNECTED}),  # muting closes the mic, not the speaker
    S.OFFLINE: frozenset({T.DISCONNECTED}),
}
IGNORED: Mapping[DialogState, frozenset[Trigger]] = {
    state: (_LATE | extra) - TABLE[state].keys() for state, extra in _IGNORED_EXTRA.items()
}


def resolve(target: Target, *, online: bool, muted: bool) -> DialogState:
    if target == REST:
        if muted:
            return S.MUTED
        return S.IDLE if online else S.OFFLINE
    return DialogState(target)


def next_state(state: DialogState, trigger: Trigger, *, online: bool, muted: bool) -> DialogState | None:
    """The state after ``trigger``, or None when the trigger means nothing in ``state``."""
    target = TABLE[state].get(trigger)
    if target is None:
        return None
    return resolve(target, online=online, muted=muted)


@dataclass(frozen=True, slots=True)
class DialogTimeouts:
    """Longest time in each state; IDLE and MUTED have none."""

    listening_s: float = field(
        default=12.0, metadata={"help": "longest capture (safety net over the endpointer)", "gt": 0.0}
    )
    thinking_s: float = field(default=10.0, metadata={"help": "longest wait for AVS to answer", "min": 0.1})
    speaking_s: float = field(default=300.0, metadata={"help": "longest Speak", "min": 0.1})
    expecting_s: float = field(
        default=9.0, metadata={"help": "fallback when ExpectSpeech gives none", "min": 0.1}
    )
    offline_recheck_s: float = field(
        default=60.0, metadata={"help": "re-check the connection while offline", "gt": 0.0}
    )

    def for_state(self, state: DialogState) -> float | None:
        return {
            S.LISTENING: self.listening_s,
            S.THINKING: self.thinking_s,
            S.SPEAKING: self.speaking_s,
            S.EXPECTING: self.expecting_s,
            S.OFFLINE: self.offline_recheck_s,
        }.get(state)


@dataclass(frozen=True, slots=True)
class Transition:
    previous: DialogState
    trigger: Trigger
    state: DialogState
    time: float


Observer = Callable[[Transition], None]


def _never_connected() -> bool:
    return False


class DialogMachine:
    """Holds the current state, its data and the muted fact, applies triggers, tracks the state's deadline.

    Observers are isolated (:class:`~avsd.observers.Observers`): one that raises is logged and counted, and the
    transition stands.
    """

    def __init__(
        self,
        timeouts: DialogTimeouts,
        *,
        connected: Callable[[], bool] = _never_connected,
        muted: bool = False,
    ) -> None:
        self.timeouts = timeouts
        self._connected = connected
        self.muted = muted
        self.state = resolve(REST, online=connected(), muted=muted)
        self.data: Any = None
        self.deadline: float | None = None
        self.observers: Observers[Transition] = Observers("dialog state")
        self.unexpected: Counter[tuple[DialogState, Trigger]] = Counter()

    @property
    def online(self) -> bool:
        return self._connected()

    def add_observer(self, observer: Observer, *, name: str | None = None) -> Callable[[], None]:
        return self.observers.add(observer, name=name)

    def fire(
        self, trigger: Trigger, now: float, *, timeout_s: float | None = None, data: Any = None
    ) -> Transition | None:
        """Apply ``trigger`` at time ``now``; ``timeout_s`` overrides the state's default timeout (ExpectSpeech);
        ``data`` is the new state's data (None for most states)."""
        if trigger is T.MUTE_TOGGLE:
            self.muted = not self.muted
        new_state = next_state(self.state, trigger, online=self._connected(), muted=self.muted)
        if new_state is None:
            if trigger not in IGNORED[self.state]:
                self.unexpected[(self.state, trigger)] += 1
                _LOGGER.warning("unexpected trigger %s in state %s; ignored", trigger, self.state)
            return None
        transition = Transition(self.state, trigger, new_state, now)
        self.state = new_state
        self.data = data
        limit = timeout_s if timeout_s is not None else self.timeouts.for_state(new_state)
        self.deadline = None if limit is None else now + limit
        self.observers.notify(transition)
        return transition

    def check_timeout(self, now: float) -> Transition | None:
        if self.deadline is not None and now >= self.deadline:
            return self.fire(T.TIMEOUT, now)
        return None
