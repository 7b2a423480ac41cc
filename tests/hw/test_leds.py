"""LED drivers on MockFactory: single, RGB, APA102 over (mock) SPI, terminal; the animation task."""

from __future__ import annotations

import io
from typing import Any

import pytest

from avsd.errors import ConfigError
from avsd.hw.factory import HardwareError
from avsd.hw.leds import (
    Apa102Ring,
    LedPresenter,
    LedSettings,
    NullLed,
    RecordingLed,
    RgbLed,
    SingleLed,
    TerminalLed,
    apa102_words,
    global_brightness,
)
from avsd.hw.patterns import PATTERNS, Effect, LedInputs, LedPattern, Pattern
from avsd.root import select_led_driver
from avsd.state import DialogState
from tests.hw.conftest import Apa102Listener, VirtualTime

P = LedPattern


@pytest.mark.parametrize(
    ("frame", "gb", "expected"),
    [
        ([(1, 2, 3)], 31, [0, 0, 0, 0, 0xFF, 3, 2, 1, 0, 0, 0, 0, 0]),  # B, G, R after the brightness byte
        ([(255, 0, 0), (0, 255, 0)], 7, [0, 0, 0, 0, 0xE7, 0, 0, 255, 0xE7, 0, 255, 0, 0, 0, 0, 0, 0]),
    ],
)
def test_apa102_words(frame: list[tuple[int, int, int]], gb: int, expected: list[int]) -> None:
    assert apa102_words(frame, gb) == expected


def test_apa102_end_frame_grows_with_the_chain() -> None:
    assert len(apa102_words([(0, 0, 0)] * 12, 1)) == 4 + 48 + 4 + 1
    assert len(apa102_words([(0, 0, 0)] * 17, 1)) == 4 + 68 + 4 + 2
    with pytest.raises(ValueError):
        apa102_words([(0, 0, 0)], 32)


@pytest.mark.parametrize(("b", "level"), [(0.0, 0), (0.001, 1), (0.5, 16), (1.0, 31)])
def test_global_brightness(b: float, level: int) -> None:
    assert global_brightness(b) == level


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"kind": "neon"}, "led.kind"),
        ({"kind": "single"}, "led.pins"),
        ({"kind": "rgb", "pins": (1, 2)}, "led.pins"),
        ({"brightness": 1.5}, "led.brightness"),
        ({"kind": "apa102", "pixels": 0}, "led.pixels"),
    ],
)
def test_settings_validation(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        LedSettings(**kwargs)
    assert info.value.key == key


def test_single_pwm_led_follows_the_pattern(mock_factory: Any) -> None:
    led = SingleLed(LedSettings(kind="single", pins=(22,), brightness=0.5), pin_factory=mock_factory)
    pin = mock_factory.pin(22)
    led.show(PATTERNS[P.LISTENING])  # solid blue: full level, times brightness
    assert pin.state == pytest.approx(0.5)
    led.show(PATTERNS[P.IDLE])
    assert pin.state == 0
    led.show(PATTERNS[P.MUTED])
    assert pin.state == pytest.approx(0.5)
    led.close()
    assert pin.state == 0  # dark on the way out
    led.show(PATTERNS[P.MUTED])  # after close: ignored, no error
    assert pin.state == 0


def test_single_on_off_led(mock_factory: Any) -> None:
    led = SingleLed(
        LedSettings(kind="single", pins=(22,), pwm=False, active_high=False), pin_factory=mock_factory
    )
    pin = mock_factory.pin(22)
    led.show(PATTERNS[P.MUTED])
    assert pin.state == 0  # active low: on is 0 V
    led.show(PATTERNS[P.IDLE])
    assert pin.state == 1
    led.close()


def test_rgb_led_colours(mock_factory: Any) -> None:
    led = RgbLed(LedSettings(kind="rgb", pins=(5, 6, 13), brightness=1.0), pin_factory=mock_factory)
    red, green, blue = (mock_factory.pin(n) for n in (5, 6, 13))
    led.show(PATTERNS[P.MUTED])
    assert (red.state, green.state, blue.state) == (pytest.approx(1.0), 0, 0)
    led.show(PATTERNS[P.NOTIFICATION])  # yellow (a pulse, starting dim): more red than green, no blue
    assert red.state > green.state > 0 and blue.state == 0
    led.close()
    assert (red.state, green.state, blue.state) == (0, 0, 0)


def test_apa102_ring_over_mock_spi(plain_mock_factory: Any, apa102: Apa102Listener) -> None:
    settings = LedSettings(kind="apa102", pixels=3, brightness=1.0)
    ring = Apa102Ring(settings, pin_factory=plain_mock_factory)
    ring.show(PATTERNS[P.LISTENING])
    assert apa102.pixels() == [(31, 0, 0, 255)] * 3
    ring.show(PATTERNS[P.MUTED])
    assert apa102.colors() == [(255, 0, 0)] * 3
    ring.show(PATTERNS[P.MUTED])  # unchanged pattern: no SPI traffic
    count = len(apa102.transfers)
    ring.show(PATTERNS[P.MUTED])
    assert len(apa102.transfers) == count
    ring.close()
    assert apa102.colors() == [(0, 0, 0)] * 3


def test_apa102_power_pin_of_the_4mic_hat(plain_mock_factory: Any, apa102: Apa102Listener) -> None:
    ring = Apa102Ring(LedSettings(kind="apa102", pixels=12, power_pin=5), pin_factory=plain_mock_factory)
    power = plain_mock_factory.pin(5)
    assert power.state is True
    ring.show(PATTERNS[P.THINKING])
    assert len(apa102.pixels()) == 12
    assert apa102.pixels()[0][0] == 16  # brightness 0.5 -> 16/31
    ring.close()
    assert power.state is False


async def test_animation_runs_as_a_task_and_stops(
    plain_mock_factory: Any, apa102: Apa102Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualTime(monkeypatch)  # the loop's timers and the ring's clock: one manual time, no real sleeps
    ring = Apa102Ring(LedSettings(kind="apa102", pixels=3, fps=60), pin_factory=plain_mock_factory, clock=clock)
    ring.show(Pattern(P.THINKING, (0, 0, 200), Effect.SPIN, 0.15))
    for _ in range(18):  # 0.3 s in 60 fps frames: two turns
        await clock.advance(1 / 60)
    heads = [tuple(c).index(max(c)) for c in (apa102.colors(i) for i in range(len(apa102.transfers)))]
    assert set(heads) == {0, 1, 2}  # the head went all the way round
    ring.show(PATTERNS[P.MUTED])  # a solid pattern cancels the animation
    count = len(apa102.transfers)
    await clock.advance(10.0)
    assert len(apa102.transfers) == count  # no frame in 10 s of loop time
    assert apa102.colors() == [(255, 0, 0)] * 3
    ring.show(PATTERNS[P.SPEAKING])
    await clock.advance(1 / 60)
    ring.close()
    count = len(apa102.transfers)
    await clock.advance(10.0)
    assert len(apa102.transfers) == count
    assert apa102.colors() == [(0, 0, 0)] * 3


def test_animated_pattern_without_a_loop_shows_its_first_frame(mock_factory: Any) -> None:
    led = SingleLed(LedSettings(kind="single", pins=(22,), brightness=1.0), pin_factory=mock_factory)
    led.show(PATTERNS[P.SPEAKING])  # pulse starts at its floor
    assert 0 < mock_factory.pin(22).state < 0.3
    led.close()


def test_terminal_led_on_a_pipe_writes_one_line_per_pattern() -> None:
    out = io.StringIO()
    led = TerminalLed(3, stream=out)
    led.show(PATTERNS[P.LISTENING])
    led.show(PATTERNS[P.LISTENING])
    led.show(PATTERNS[P.MUTED])
    led.close()
    assert out.getvalue().splitlines() == [
        "[leds] listening: solid rgb(0, 0, 255)",
        "[leds] muted: solid rgb(255, 0, 0)",
    ]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_led_on_a_tty_draws_coloured_dots() -> None:
    out = _Tty()
    led = TerminalLed(3, stream=out)
    led.show(PATTERNS[P.MUTED])
    assert out.getvalue().count("\x1b[38;2;255;0;0m●") == 3
    assert "muted" in out.getvalue()
    led.close()
    assert out.getvalue().endswith("○○○ muted\n")  # switched off, then a newline for the shell


def test_the_root_picks_the_led_driver_for_each_kind(mock_factory: Any) -> None:
    assert isinstance(select_led_driver(LedSettings()), NullLed)
    assert isinstance(select_led_driver(LedSettings(kind="terminal")), TerminalLed)
    single = select_led_driver(LedSettings(kind="single", pins=(4,)), pin_factory=mock_factory)
    assert isinstance(single, SingleLed)
    rgb = select_led_driver(LedSettings(kind="rgb", pins=(5, 6, 13)), pin_factory=mock_factory)
    assert isinstance(rgb, RgbLed)
    single.close()
    rgb.close()


def test_gpio_errors_become_hardware_errors(mock_factory: Any) -> None:
    with pytest.raises(HardwareError):
        SingleLed(LedSettings(kind="single", pins=(99,)), pin_factory=mock_factory)
    led = SingleLed(LedSettings(kind="single", pins=(4,)), pin_factory=mock_factory)
    with pytest.raises(HardwareError):  # the pin is taken
        SingleLed(LedSettings(kind="single", pins=(4,)), pin_factory=mock_factory)
    led.close()


def test_presenter_shows_only_changes() -> None:
    led = RecordingLed()
    presenter = LedPresenter(led)
    presenter.update(LedInputs(DialogState.IDLE, connected=True))
    presenter.update(LedInputs(DialogState.IDLE, connected=True, notification_waiting=False))
    presenter.update(LedInputs(DialogState.LISTENING, connected=True))
    assert presenter.update(LedInputs(DialogState.IDLE, connected=False)).name is P.OFFLINE
    assert [p.name for p in led.shown] == [P.IDLE, P.LISTENING, P.OFFLINE]
