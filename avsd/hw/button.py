"""The talk button: a pure debouncer and press classifier, a pure action table, and the gpiozero driver around
them.

Gestures (times from ``ButtonSettings``)::

    released before hold_s                  -> TAP
    still down at hold_s                    -> HOLD_START  (start the PRESS_AND_HOLD capture)
      then released before long_press_s     -> HOLD_END    (stop capture; AVS sends no StopCapture for it)
      or still down at long_press_s         -> LONG_PRESS  (no HOLD_END follows; the release is swallowed)

How hold-to-talk and the long press coexist: a hold first starts a PRESS_AND_HOLD capture; if the button is
still down at ``long_press_s`` the gesture becomes a long press, :func:`commands_for` returns ``CANCEL_HOLD``
before the long-press command (privacy toggle by default), and the daemon abandons the capture (the Recognize
stream is cancelled, nothing is answered). Someone who needs hold-to-talk utterances longer than 3 s raises
``long_press_s`` or sets ``long_press_action = "none"``.

Debouncing is ours, not gpiozero's ``bounce_time``, which *drops* edges (gpiozero#550) and can lose a release,
leaving the button "held" forever. Here every raw edge opens a settle window; at its end the pin level is read
and only a real change of the stable level counts (so finger static, AlexaPi#30, shorter than the window is
ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avsd.errors import ConfigError
from avsd.hw.factory import call_gpio, gpio_errors, pin_factory_for

__all__ = [
    "ButtonAction",
    "ButtonClassifier",
    "ButtonCommand",
    "ButtonSettings",
    "Debouncer",
    "GpioButton",
    "commands_for",
    "pin_factory_for",
]

logger = logging.getLogger(__name__)


class ButtonAction(StrEnum):
    TAP = "tap"
    HOLD_START = "hold_start"
    HOLD_END = "hold_end"
    LONG_PRESS = "long_press"


class ButtonCommand(StrEnum):
    """What the daemon does; the configurable side of the gesture -> command mapping."""

    TALK = "talk"  # start a TAP dialog (Recognize with initiator TAP)
    STOP = "stop"  # stop speech / a ringing alert (a tap while busy)
    HOLD_TO_TALK = "hold_to_talk"  # start a PRESS_AND_HOLD capture, ended by END_HOLD
    END_HOLD = "end_hold"  # the button was released: stop the PRESS_AND_HOLD capture
    CANCEL_HOLD = "cancel_hold"  # the hold turned into a long press: abandon the capture
    PRIVACY_TOGGLE = "privacy_toggle"  # close/reopen the microphone stream
    NONE = "none"


TAP_CHOICES = ("talk", "stop", "privacy_toggle", "none")
HOLD_CHOICES = ("hold_to_talk", "talk", "none")
LONG_PRESS_CHOICES = ("privacy_toggle", "stop", "talk", "none")


@dataclass(frozen=True, slots=True)
class ButtonSettings:
    pin: int | None = field(
        default=17,
        metadata={"help": "BCM pin of the talk button (17 on the ReSpeaker 2-mic HAT); -1 or \"none\" = no button"},
    )
    pull_up: bool = field(
        default=True, metadata={"help": "button connects the pin to ground (internal pull-up)"}
    )
    bounce_s: float = field(
        default=0.05, metadata={"help": "debounce settle time in seconds", "min": 0.0, "max": 0.5}
    )
    hold_s: float = field(
        default=0.6, metadata={"help": "press longer than this starts hold-to-talk", "min": 0.2, "max": 5.0}
    )
    long_press_s: float = field(
        default=3.0,
        metadata={"help": "press longer than this is a long press (privacy mute)", "min": 1.0, "max": 15.0},
    )
    tap_action: str = field(
        default="talk",
        metadata={"help": "what a tap does (a tap while speaking/ringing stops)", "choices": TAP_CHOICES},
    )
    hold_action: str = field(
        default="hold_to_talk", metadata={"help": "what a hold does", "choices": HOLD_CHOICES}
    )
    long_press_action: str = field(
        default="privacy_toggle", metadata={"help": "what a long press does", "choices": LONG_PRESS_CHOICES}
    )

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("tap_action", self.tap_action, TAP_CHOICES),
            ("hold_action", self.hold_action, HOLD_CHOICES),
            ("long_press_action", self.long_press_action, LONG_PRESS_CHOICES),
        ):
            if value not in choices:
                raise ConfigError(f"button.{name}", f"must be one of {', '.join(choices)}, got {value!r}")
        if self.hold_s >= self.long_press_s:
            raise ConfigError("button.hold_s", "must be shorter than button.long_press_s")


class Debouncer:
    """Settle-window debouncing. Pure: times and levels come in, stable transitions come out."""

    def __init__(self, bounce_s: float, pressed: bool = False) -> None:
        self.bounce_s = bounce_s
        self.stable = pressed
        self._window_start: float | None = None

    def edge(self, t: float) -> float | None:
        """A raw edge at ``t``. Returns the deadline to call :meth:`settle` at, or None if a window is
        open."""
        if self._window_start is not None:
            return None
        self._window_start = t
        return t + self.bounce_s

    def settle(self, pressed: bool) -> tuple[bool, float] | None:
        """End of the window with the pin's level now. Returns (new stable level, time of its first edge)."""
        start, self._window_start = self._window_start, None
        if start is None or pressed == self.stable:
            return None
        self.stable = pressed
        return pressed, start


class ButtonClassifier:
    """Turns debounced press/release times into gestures. Pure. ``None`` disables hold or long press."""

    def __init__(self, hold_s: float | None = 0.6, long_press_s: float | None = 3.0) -> None:
        self.hold_s = hold_s
        self.long_press_s = long_press_s
        self._pressed_at: float | None = None
        self._held = False
        self._long = False

    @property
    def pressed(self) -> bool:
        return self._pressed_at is not None

    def press(self, t: float) -> list[ButtonAction]:
        if self._pressed_at is None:
            self._pressed_at, self._held, self._long = t, False, False
        return []

    def tick(self, t: float) -> list[ButtonAction]:
        """Emit HOLD_START / LONG_PRESS once their threshold has passed while the button is still down."""
        if self._pressed_at is None:
            return []
        elapsed = t - self._pressed_at
        actions: list[ButtonAction] = []
        if self.hold_s is not None and not self._held and elapsed >= self.hold_s:
            self._held = True
            actions.append(ButtonAction.HOLD_START)
        if self.long_press_s is not None and not self._long and elapsed >= self.long_press_s:
            self._long = True
            actions.append(ButtonAction.LONG_PRESS)
        return actions

    def release(self, t: float) -> list[ButtonAction]:
        if self._pressed_at is None:
            return []
        actions = self.tick(t)  # thresholds crossed without a tick still count
        if self._long:
            pass  # the long press already acted; the release means nothing
        elif self._held:
            actions.append(ButtonAction.HOLD_END)
        else:
            actions.append(ButtonAction.TAP)
        self._pressed_at = None
        return actions


def commands_for(
    action: ButtonAction, settings: ButtonSettings, *, busy: bool, muted: bool = False
) -> tuple[ButtonCommand, ...]:
    """The configured commands for a gesture. Pure.

    ``busy``: Alexa is speaking or an alert is ringing (a tap stops it). ``muted``: privacy mute is on, the
    microphone is closed, so no gesture may start a capture; only the long press (to unmute) and stop act.
    """
    if muted:
        commands = commands_for(action, settings, busy=busy)
        allowed = (ButtonCommand.PRIVACY_TOGGLE, ButtonCommand.STOP)
        return tuple(c for c in commands if c in allowed) or (ButtonCommand.NONE,)
    holding = settings.hold_action == "hold_to_talk"
    match action:
        case ButtonAction.TAP:
            if busy and settings.tap_action == "talk":
                return (ButtonCommand.STOP,)
            return (ButtonCommand(settings.tap_action),)
        case ButtonAction.HOLD_START:
            return (ButtonCommand(settings.hold_action),)
        case ButtonAction.HOLD_END:
            return (ButtonCommand.END_HOLD,) if holding else (ButtonCommand.NONE,)
        case ButtonAction.LONG_PRESS:
            command = ButtonCommand(settings.long_press_action)
            return (ButtonCommand.CANCEL_HOLD, command) if holding else (command,)
    raise ValueError(f"unknown button action {action!r}")  # pragma: no cover - exhaustive match


class GpioButton:
    """A gpiozero Button feeding the debouncer and classifier on the asyncio loop.

    gpiozero calls back on its own thread; the edge time is taken there and handed to the loop with
    ``call_soon_threadsafe``. Everything after that (debounce windows, hold/long-press timers, ``on_action``)
    runs on the loop thread.
    """

    def __init__(
        self,
        settings: ButtonSettings,
        on_action: Callable[[ButtonAction], None],
        *,
        loop: asyncio.AbstractEventLoop,
        pin_factory: object | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.pin is None:
            raise ValueError("GpioButton needs a pin (button.pin)")
        self._settings = settings
        self._on_action = on_action
        self._loop = loop
        self._clock = clock
        hold_s = None if settings.hold_action == "none" else settings.hold_s
        long_s = None if settings.long_press_action == "none" else settings.long_press_s
        self._classifier = ButtonClassifier(hold_s, long_s)
        self._timers: list[asyncio.TimerHandle] = []
        self._settle_handle: asyncio.TimerHandle | None = None
        self._closed = False
        with gpio_errors(f"button on GPIO{settings.pin}"):
            from gpiozero import Button

            # bounce_time=None: gpiozero's own debounce drops edges (see the module docstring).
            self._button: Any = Button(
                settings.pin, pull_up=settings.pull_up, bounce_time=None, pin_factory=pin_factory
            )
            self._debouncer = Debouncer(settings.bounce_s, pressed=bool(self._button.is_pressed))
            self._button.when_pressed = self._edge_from_gpio
            self._button.when_released = self._edge_from_gpio
        logger.info("button on GPIO%d ready", settings.pin)

    def close(self) -> None:
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        if self._settle_handle is not None:
            self._settle_handle.cancel()
        call_gpio("closing the button", self._button.close)

    # --- gpiozero's thread ---
    def _edge_from_gpio(self) -> None:
        t = self._clock()
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self._loop.call_soon_threadsafe(self._edge, t)

    # --- the loop thread ---
    def _edge(self, t: float) -> None:
        if self._closed:
            return
        deadline = self._debouncer.edge(t)
        if deadline is not None:
            self._settle_handle = self._loop.call_later(max(0.0, deadline - self._clock()), self._settle)

    def _settle(self) -> None:
        self._settle_handle = None
        if self._closed:
            return
        changed = self._debouncer.settle(bool(self._button.is_pressed))
        if changed is None:
            return
        pressed, t = changed
        if pressed:
            self._dispatch(self._classifier.press(t))
            thresholds = (self._classifier.hold_s, self._classifier.long_press_s)
            self._timers = [
                self._loop.call_later(max(0.0, t + s - self._clock()), self._tick)
                for s in thresholds
                if s is not None
            ]
        else:
            for handle in self._timers:
                handle.cancel()
            self._timers = []
            self._dispatch(self._classifier.release(t))

    def _tick(self) -> None:
        if not self._closed:
            self._dispatch(self._classifier.tick(self._clock()))

    def _dispatch(self, actions: list[ButtonAction]) -> None:
        for action in actions:
            logger.info("button %s", action)
            self._on_action(action)
