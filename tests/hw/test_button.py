"""Button: pure debouncer, classifier and action table; the gpiozero driver through MockFactory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from avsd.errors import ConfigError
from avsd.hw.button import (
    ButtonAction,
    ButtonClassifier,
    ButtonCommand,
    ButtonSettings,
    Debouncer,
    GpioButton,
    commands_for,
)
from tests.hw.conftest import VirtualTime

A = ButtonAction
C = ButtonCommand


# --- Debouncer---
def test_debouncer_accepts_a_settled_press_with_its_first_edge_time() -> None:
    d = Debouncer(0.05)
    assert d.edge(1.00) == pytest.approx(1.05)
    assert d.edge(1.01) is None  # bounce inside the window opens no new window
    assert d.edge(1.02) is None
    assert d.settle(pressed=True) == (True, 1.00)
    assert d.stable is True


def test_debouncer_ignores_a_spike_shorter_than_the_window() -> None:
    d = Debouncer(0.05)
    d.edge(2.0)
    d.edge(2.001)  # finger static: down and straight back up
    assert d.settle(pressed=False) is None
    assert d.stable is False


def test_debouncer_never_loses_a_release_that_bounces() -> None:
    d = Debouncer(0.05, pressed=True)
    d.edge(3.0)
    d.edge(3.01)
    d.edge(3.02)  # ends released, whatever the edge count
    assert d.settle(pressed=False) == (False, 3.0)
    assert d.edge(3.2) == pytest.approx(3.25)  # next window opens normally


def test_debouncer_settle_without_edge_is_nothing() -> None:
    assert Debouncer(0.05).settle(pressed=True) is None


# --- ButtonClassifier---
# Sequences of (op, time) -> all actions emitted, with hold 0.6 s and long press 3 s.
SEQUENCES = [
    ("tap", [("p", 0.0), ("r", 0.2)], [A.TAP]),
    ("tap just under hold", [("p", 0.0), ("t", 0.59), ("r", 0.599)], [A.TAP]),
    (
        "hold with ticks",
        [("p", 0.0), ("t", 0.3), ("t", 0.6), ("t", 1.0), ("r", 1.5)],
        [A.HOLD_START, A.HOLD_END],
    ),
    ("hold without ticks", [("p", 0.0), ("r", 1.5)], [A.HOLD_START, A.HOLD_END]),
    (
        "long press",
        [("p", 0.0), ("t", 0.6), ("t", 2.9), ("t", 3.0), ("t", 3.5), ("r", 4.0)],
        [A.HOLD_START, A.LONG_PRESS],
    ),
    ("long press, one late tick", [("p", 10.0), ("t", 13.2), ("r", 13.3)], [A.HOLD_START, A.LONG_PRESS]),
    ("long press without ticks", [("p", 0.0), ("r", 5.0)], [A.HOLD_START, A.LONG_PRESS]),
    ("release without press", [("r", 1.0)], []),
    ("double press counts once", [("p", 0.0), ("p", 0.1), ("r", 0.2)], [A.TAP]),
    ("two taps", [("p", 0.0), ("r", 0.1), ("p", 0.3), ("r", 0.4)], [A.TAP, A.TAP]),
    ("ticks while up do nothing", [("t", 5.0), ("p", 6.0), ("r", 6.1), ("t", 9.0)], [A.TAP]),
]


@pytest.mark.parametrize(
    ("ops", "expected"), [(s[1], s[2]) for s in SEQUENCES], ids=[s[0] for s in SEQUENCES]
)
def test_classifier_sequences(ops: list[tuple[str, float]], expected: list[ButtonAction]) -> None:
    c = ButtonClassifier(hold_s=0.6, long_press_s=3.0)
    got: list[ButtonAction] = []
    for op, t in ops:
        got += {"p": c.press, "r": c.release, "t": c.tick}[op](t)
    assert got == expected
    assert not c.pressed


@pytest.mark.parametrize(
    ("hold_s", "long_s", "duration", "expected"),
    [
        (None, 3.0, 1.5, [A.TAP]),  # hold disabled: anything short of a long press is a tap
        (None, 3.0, 3.5, [A.LONG_PRESS]),
        (0.6, None, 9.0, [A.HOLD_START, A.HOLD_END]),  # long press disabled: hold-to-talk of any length
        (None, None, 9.0, [A.TAP]),
    ],
)
def test_classifier_with_gestures_disabled(
    hold_s: float | None, long_s: float | None, duration: float, expected: list[ButtonAction]
) -> None:
    c = ButtonClassifier(hold_s, long_s)
    assert c.press(0.0) + c.tick(duration) + c.release(duration) == expected


# --- the action table---
DEFAULT = ButtonSettings()


@pytest.mark.parametrize(
    ("action", "settings", "busy", "expected"),
    [
        (A.TAP, DEFAULT, False, (C.TALK,)),
        (A.TAP, DEFAULT, True, (C.STOP,)),  # tap while speaking or ringing stops
        (A.HOLD_START, DEFAULT, False, (C.HOLD_TO_TALK,)),
        (A.HOLD_START, DEFAULT, True, (C.HOLD_TO_TALK,)),  # barge-in by holding
        (A.HOLD_END, DEFAULT, False, (C.END_HOLD,)),
        (A.LONG_PRESS, DEFAULT, False, (C.CANCEL_HOLD, C.PRIVACY_TOGGLE)),  # the hold becomes a mute toggle
        (A.LONG_PRESS, DEFAULT, True, (C.CANCEL_HOLD, C.PRIVACY_TOGGLE)),
        (A.TAP, ButtonSettings(tap_action="privacy_toggle"), True, (C.PRIVACY_TOGGLE,)),
        (A.TAP, ButtonSettings(tap_action="none"), False, (C.NONE,)),
        (A.HOLD_START, ButtonSettings(hold_action="talk"), False, (C.TALK,)),
        (A.HOLD_END, ButtonSettings(hold_action="talk"), False, (C.NONE,)),
        (A.LONG_PRESS, ButtonSettings(hold_action="talk"), False, (C.PRIVACY_TOGGLE,)),
        (A.LONG_PRESS, ButtonSettings(long_press_action="stop"), False, (C.CANCEL_HOLD, C.STOP)),
    ],
)
def test_commands_for(
    action: ButtonAction, settings: ButtonSettings, busy: bool, expected: tuple[C, ...]
) -> None:
    assert commands_for(action, settings, busy=busy) == expected


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tap_action": "dance"}, "button.tap_action"),
        ({"hold_action": "privacy_toggle"}, "button.hold_action"),
        ({"long_press_action": "hold_to_talk"}, "button.long_press_action"),
        ({"hold_s": 3.0, "long_press_s": 3.0}, "button.hold_s"),
    ],
)
def test_settings_validation_names_the_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        ButtonSettings(**kwargs)
    assert info.value.key == key


# --- GpioButton on gpiozero's MockFactory, on virtual time ---
# The loop's clock is replaced by a manual one (call_later and the button's edge stamps both read it), so every
# threshold is tested to the millisecond, with no real sleeps and no timing margins.
FAST = ButtonSettings(pin=17, bounce_s=0.02, hold_s=0.15, long_press_s=0.4)


async def _button(
    mock_factory: Any, clock: VirtualTime, settings: ButtonSettings = FAST
) -> tuple[GpioButton, list[ButtonAction], Any]:
    actions: list[ButtonAction] = []
    button = GpioButton(
        settings, actions.append, loop=asyncio.get_running_loop(), pin_factory=mock_factory, clock=clock
    )
    return button, actions, mock_factory.pin(settings.pin)


# The release is known only when its 20 ms settle window closes, so a press counts as a tap when it is released
# more than bounce_s before hold_s (0.13 s), and as a hold otherwise.
@pytest.mark.parametrize(
    ("down_s", "expected"),
    [(0.125, [A.TAP]), (0.135, [A.HOLD_START, A.HOLD_END]), (0.155, [A.HOLD_START, A.HOLD_END])],
)
async def test_gpio_tap_or_hold_is_decided_at_hold_s(
    mock_factory: Any, monkeypatch: pytest.MonkeyPatch, down_s: float, expected: list[ButtonAction]
) -> None:
    clock = VirtualTime(monkeypatch)
    button, actions, pin = await _button(mock_factory, clock)
    pin.drive_low()  # pull-up: pressed pulls the pin to ground
    await clock.advance(down_s)
    assert actions == ([A.HOLD_START] if down_s > 0.15 else [])  # nothing until released: it might become a hold
    pin.drive_high()
    await clock.advance(0.02)  # the release's settle window
    assert actions == expected
    button.close()


async def test_gpio_hold_then_release_cancels_the_long_press(
    mock_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualTime(monkeypatch)
    button, actions, pin = await _button(mock_factory, clock)
    pin.drive_low()
    await clock.advance(0.3)
    assert actions == [A.HOLD_START]  # emitted while still held: capture starts now
    pin.drive_high()
    await clock.advance(0.02)
    assert actions == [A.HOLD_START, A.HOLD_END]
    await clock.advance(10.0)  # long past long_press_s: the release cancelled that timer
    assert actions == [A.HOLD_START, A.HOLD_END]
    button.close()


async def test_gpio_long_press_at_long_press_s(mock_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualTime(monkeypatch)
    button, actions, pin = await _button(mock_factory, clock)
    pin.drive_low()
    await clock.advance(0.397)
    assert actions == [A.HOLD_START]
    await clock.advance(0.004)  # 0.401 s: just past the threshold (to the float rounding of the sums)
    assert actions == [A.HOLD_START, A.LONG_PRESS]
    pin.drive_high()
    await clock.advance(0.02)
    assert actions == [A.HOLD_START, A.LONG_PRESS]  # the release is swallowed
    button.close()


async def test_gpio_bouncy_contacts_give_one_tap(mock_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualTime(monkeypatch)
    button, actions, pin = await _button(mock_factory, clock)
    for _ in range(4):  # contact bounce on the way down, within the window
        pin.drive_low()
        await clock.advance(0.002)
        pin.drive_high()
    pin.drive_low()
    await clock.advance(0.05)
    for _ in range(3):  # and on the way up, ending released
        pin.drive_high()
        await clock.advance(0.002)
        pin.drive_low()
    pin.drive_high()
    await clock.advance(0.05)
    assert actions == [A.TAP]
    button.close()


async def test_gpio_static_spike_is_ignored(mock_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualTime(monkeypatch)
    button, actions, pin = await _button(mock_factory, clock)
    pin.drive_low()
    await clock.advance(0.019)
    pin.drive_high()  # back before the 20 ms settle window closed
    await clock.advance(10.0)
    assert actions == []
    button.close()


async def test_gpio_active_high_button(mock_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualTime(monkeypatch)
    settings = ButtonSettings(pin=27, pull_up=False, bounce_s=0.02, hold_s=0.15, long_press_s=0.4)
    button, actions, pin = await _button(mock_factory, clock, settings)
    pin.drive_high()
    await clock.advance(0.05)
    pin.drive_low()
    await clock.advance(0.05)
    assert actions == [A.TAP]
    button.close()


async def test_gpio_close_releases_the_pin_and_stops_timers(
    mock_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualTime(monkeypatch)
    button, actions, pin = await _button(mock_factory, clock)
    pin.drive_low()
    await clock.advance(0.05)
    button.close()
    await clock.advance(10.0)  # past every threshold: the timers were cancelled
    assert actions == []
    again, _, _ = await _button(mock_factory, clock)  # the pin is free again
    again.close()


def test_gpio_button_needs_a_pin(mock_factory: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError):
            GpioButton(ButtonSettings(pin=None), lambda a: None, loop=loop, pin_factory=mock_factory)
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("action", "busy", "expected"),
    [
        (A.TAP, False, (C.NONE,)),  # the microphone is closed: no dialog
        (A.TAP, True, (C.STOP,)),  # but an alarm can still be stopped
        (A.HOLD_START, False, (C.NONE,)),
        (A.HOLD_END, False, (C.NONE,)),
        (A.LONG_PRESS, False, (C.PRIVACY_TOGGLE,)),  # unmute; there is no capture to cancel
    ],
)
def test_commands_while_muted(action: ButtonAction, busy: bool, expected: tuple[C, ...]) -> None:
    assert commands_for(action, DEFAULT, busy=busy, muted=True) == expected
