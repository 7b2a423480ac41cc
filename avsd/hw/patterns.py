"""The LED pattern table: state -> pattern, and pattern -> pixel colours at time t. Pure: no I/O, no clock.

In the spirit of Alexa's attention system: listening is blue, thinking spins, speaking pulses cyan, privacy
mute is solid red, a waiting notification pulses yellow, a ringing alert flashes white, and lost connectivity
pulses orange.

Priorities (the first match wins), documented once here and tested row by row::

    alert ringing > muted > listening / thinking / speaking / expecting > offline > notification > idle

- A ringing alert beats everything: it sounds even when the microphone is muted or AVS is unreachable (alarms
  ring offline), and the user's next move is "stop", so the LEDs must say why the device is making noise.
- Privacy mute beats the dialog states: a closed microphone must never look like it is listening.
- Offline beats a waiting notification: the notification is stale news; the lost connection is why Alexa will
  not answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from avsd.state import DialogState

RGB = tuple[int, int, int]

OFF_RGB: RGB = (0, 0, 0)


class LedPattern(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    EXPECTING = "expecting"
    MUTED = "muted"
    OFFLINE = "offline"
    ALERT = "alert"
    NOTIFICATION = "notification"


class Effect(StrEnum):
    OFF = "off"
    SOLID = "solid"
    PULSE = "pulse"  # brightness follows a raised cosine between PULSE_FLOOR and 1
    SPIN = "spin"  # a bright head with a fading tail runs round the ring (a pulse on one pixel)
    BLINK = "blink"  # on for the first half of each period, off for the second


ANIMATED = frozenset({Effect.PULSE, Effect.SPIN, Effect.BLINK})

# A pulse never goes fully dark: a LED that is off for a moment reads as "idle" to someone glancing at it.
PULSE_FLOOR = 0.15
# Spin tail: the pixels behind the head glow at these fractions of full colour.
SPIN_TAIL = (1.0, 0.35, 0.1)


@dataclass(frozen=True, slots=True)
class Pattern:
    name: LedPattern
    color: RGB
    effect: Effect
    period_s: float = 0.0

    def __post_init__(self) -> None:
        if any(not 0 <= c <= 255 for c in self.color):
            raise ValueError(f"colour components must be 0..255, got {self.color}")
        if self.effect in ANIMATED and self.period_s <= 0:
            raise ValueError(f"{self.effect} needs a positive period, got {self.period_s}")

    @property
    def animated(self) -> bool:
        return self.effect in ANIMATED


@dataclass(frozen=True, slots=True)
class LedInputs:
    state: DialogState
    connected: bool
    alert_ringing: bool = False
    notification_waiting: bool = False


BLUE: RGB = (0, 0, 255)
CYAN: RGB = (0, 200, 255)
RED: RGB = (255, 0, 0)
YELLOW: RGB = (255, 160, 0)
ORANGE: RGB = (255, 60, 0)
WHITE: RGB = (255, 255, 255)

PATTERNS: dict[LedPattern, Pattern] = {
    LedPattern.IDLE: Pattern(LedPattern.IDLE, OFF_RGB, Effect.OFF),
    LedPattern.LISTENING: Pattern(LedPattern.LISTENING, BLUE, Effect.SOLID),
    LedPattern.THINKING: Pattern(LedPattern.THINKING, BLUE, Effect.SPIN, 0.8),
    LedPattern.SPEAKING: Pattern(LedPattern.SPEAKING, CYAN, Effect.PULSE, 1.2),
    # ExpectSpeech reopens the microphone without a wake word: the same blue as listening, but pulsing quickly
    # so the user can tell "Alexa asked me something" from "I woke it".
    LedPattern.EXPECTING: Pattern(LedPattern.EXPECTING, BLUE, Effect.PULSE, 0.6),
    LedPattern.MUTED: Pattern(LedPattern.MUTED, RED, Effect.SOLID),
    LedPattern.OFFLINE: Pattern(LedPattern.OFFLINE, ORANGE, Effect.PULSE, 2.0),
    LedPattern.ALERT: Pattern(LedPattern.ALERT, WHITE, Effect.BLINK, 1.0),
    LedPattern.NOTIFICATION: Pattern(LedPattern.NOTIFICATION, YELLOW, Effect.PULSE, 2.5),
}

_DIALOG: dict[DialogState, LedPattern] = {
    DialogState.LISTENING: LedPattern.LISTENING,
    DialogState.THINKING: LedPattern.THINKING,
    DialogState.SPEAKING: LedPattern.SPEAKING,
    DialogState.EXPECTING: LedPattern.EXPECTING,
}


def pattern_name_for(inputs: LedInputs) -> LedPattern:
    """The single priority table (see the module docstring)."""
    if inputs.alert_ringing:
        return LedPattern.ALERT
    if inputs.state is DialogState.MUTED:
        return LedPattern.MUTED
    dialog = _DIALOG.get(inputs.state)
    if dialog is not None:
        return dialog
    if inputs.state is DialogState.OFFLINE or not inputs.connected:
        return LedPattern.OFFLINE
    if inputs.notification_waiting:
        return LedPattern.NOTIFICATION
    return LedPattern.IDLE


def pattern_for(inputs: LedInputs) -> Pattern:
    return PATTERNS[pattern_name_for(inputs)]


def _scale(color: RGB, level: float) -> RGB:
    return (round(color[0] * level), round(color[1] * level), round(color[2] * level))


def frame_at(pattern: Pattern, t: float, n_pixels: int) -> list[RGB]:
    """The colour of each of ``n_pixels`` pixels at time ``t`` seconds since the pattern started."""
    if n_pixels < 1:
        raise ValueError(f"n_pixels must be >= 1, got {n_pixels}")
    effect = pattern.effect
    if effect is Effect.OFF:
        return [OFF_RGB] * n_pixels
    if effect is Effect.SOLID:
        return [pattern.color] * n_pixels
    phase = (t / pattern.period_s) % 1.0
    if effect is Effect.BLINK:
        return [pattern.color if phase < 0.5 else OFF_RGB] * n_pixels
    if effect is Effect.PULSE or n_pixels == 1:
        # A one-pixel "spin" degrades to a pulse: still visibly busy, never mistaken for solid listening.
        level = PULSE_FLOOR + (1 - PULSE_FLOOR) * (0.5 - 0.5 * math.cos(2 * math.pi * phase))
        return [_scale(pattern.color, level)] * n_pixels
    head = int(phase * n_pixels) % n_pixels
    frame = [OFF_RGB] * n_pixels
    for offset, level in enumerate(SPIN_TAIL[:n_pixels]):
        frame[(head - offset) % n_pixels] = _scale(pattern.color, level)
    return frame
