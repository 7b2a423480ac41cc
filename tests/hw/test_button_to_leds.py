"""End to end on MockFactory, through the real daemon: button gestures on a mock pin -> the daemon's own dialog
state machine -> LED patterns on a real Apa102Ring over mock software SPI, built by the composition root exactly
as ``avsd run --hardware auto`` builds it (only the pin factory is the mock one). Colours are the literal RGB
values a user sees, not the constants of the pattern table.

Also issue 8, defect 2: an LED driver that raises (an SPI glitch on the THINKING frame) must not end the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avsd.hw.button import ButtonCommand
from avsd.hw.leds import Apa102Ring
from avsd.hw.wiring import Hardware
from avsd.root import build_hardware
from avsd.state import DialogState as S
from tests.harness import Device, fixture_pcm, room_noise, running_device
from tests.hw.conftest import Apa102Listener

BLUE, RED, OFF = (0, 0, 255), (255, 0, 0), (0, 0, 0)
SETTINGS = [
    ("led.kind", "apa102"), ("led.pixels", 3), ("led.brightness", 1.0),
    ("button.pin", 17), ("button.bounce_s", 0.02), ("button.hold_s", 0.6), ("button.long_press_s", 1.0),
]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def hardware_for(device: Device, factory: Any) -> Hardware:
    return build_hardware(
        device.daemon, device.daemon.config, "auto", asyncio.get_running_loop(), pin_factory=factory
    )


async def test_tap_and_long_presses_drive_the_daemon_and_the_ring(
    tmp_path: Path, plain_mock_factory: Any, apa102: Apa102Listener
) -> None:
    async with asyncio.timeout(30), running_device(tmp_path, settings=SETTINGS) as device:
        hw = hardware_for(device, plain_mock_factory)
        pin = plain_mock_factory.pin(17)

        async def press(seconds: float, commands: int) -> None:
            await asyncio.sleep(0.1)  # a finger's pause between gestures (longer than the 20 ms debounce)
            pin.drive_low()
            await asyncio.sleep(seconds)  # the gesture itself: how long the finger is down
            pin.drive_high()
            await until(lambda: len(hw.commands) >= commands)

        try:
            assert isinstance(hw.led, Apa102Ring)
            await until(lambda: bool(apa102.transfers))
            assert apa102.colors() == [OFF] * 3  # idle and connected: dark

            await press(0.03, 1)  # tap -> a TAP dialog: listening, solid blue
            assert hw.commands == [ButtonCommand.TALK]
            assert device.daemon.dialog.state is S.LISTENING
            await until(lambda: apa102.colors() == [BLUE] * 3)

            await press(1.4, 4)  # a hold (talk), then a long press: the capture is cancelled, the mic muted: red
            assert hw.commands[1:] == [
                ButtonCommand.HOLD_TO_TALK, ButtonCommand.CANCEL_HOLD, ButtonCommand.PRIVACY_TOGGLE
            ]
            assert device.daemon.dialog.state is S.MUTED
            await until(lambda: apa102.colors() == [RED] * 3)

            await press(1.4, 6)  # a second long press unmutes (its hold, while muted, does nothing): dark again
            assert hw.commands[4:] == [ButtonCommand.NONE, ButtonCommand.PRIVACY_TOGGLE]
            assert device.daemon.dialog.state is S.IDLE
            await until(lambda: apa102.colors() == [OFF] * 3)
        finally:
            hw.close()


async def test_an_led_driver_raising_on_thinking_does_not_end_the_daemon(
    tmp_path: Path, plain_mock_factory: Any, apa102: Apa102Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect 2: the SPI write of the THINKING frame raises; the dialog still answers, the AVS connection stays,
    the failure is logged with the observer's name and counted, and the LEDs recover on the next state."""
    async with asyncio.timeout(60), running_device(tmp_path, settings=SETTINGS) as device:
        hw = hardware_for(device, plain_mock_factory)
        ring = hw.led
        assert isinstance(ring, Apa102Ring)
        spi: Any = ring._spi
        real_write = spi.write
        glitches: list[S] = []

        def glitchy_write(words: list[int]) -> None:
            if device.daemon.dialog.state is S.THINKING:
                glitches.append(S.THINKING)
                raise OSError(121, "Remote I/O error")  # what spidev raises when the bus glitches
            real_write(words)

        spi.write = glitchy_write
        failures_before = device.daemon.observer_failures
        try:
            await device.source.feed(room_noise(1.0) + fixture_pcm("alexa-what-time-is-it") + room_noise(3.0))
            await device.wait_state(S.THINKING, 15)
            await device.wait_state(S.SPEAKING, 15)
            await device.settle()
            assert glitches, "the THINKING frame was never written"
            assert [t.state for t in device.transitions][-3:] == [S.THINKING, S.SPEAKING, S.IDLE]
            assert device.replies(), "no reply was played"
            assert device.daemon.connected()
            assert device.daemon.observer_failures > failures_before
            assert "Hardware LEDs failed" in caplog.text
            await until(lambda: apa102.colors() == [OFF] * 3)  # idle again, and the ring took the frame
            # The speaking pulse reached the ring after the glitch: cyan at some brightness.
            shown = [c for i in range(len(apa102.transfers)) for c in apa102.colors(i)]
            assert any(r == 0 and 0 < g < b and abs(g / b - 200 / 255) < 0.05 for r, g, b in shown)
        finally:
            hw.close()
