"""End to end on MockFactory: button gestures -> commands -> (a minimal stand-in for the daemon state) ->
LED patterns on a real Apa102Ring over mock SPI. The daemon's own state machine replaces the stand-in."""

from __future__ import annotations

import asyncio
from typing import Any

from avsd.hw.button import ButtonAction, ButtonCommand, ButtonSettings, GpioButton, commands_for
from avsd.hw.leds import Apa102Ring, LedPresenter, LedSettings
from avsd.hw.patterns import LedInputs
from avsd.state import DialogState as S
from tests.hw.conftest import Apa102Listener

FAST = ButtonSettings(pin=17, bounce_s=0.02, hold_s=0.15, long_press_s=0.4)
BLUE, RED, OFF = (0, 0, 255), (255, 0, 0), (0, 0, 0)


class _Appliance:
    """Just enough of the daemon: apply button commands to a state and present it on the LEDs."""

    def __init__(self, presenter: LedPresenter) -> None:
        self.state = S.IDLE
        self.presenter = presenter
        self.commands: list[ButtonCommand] = []
        presenter.update(LedInputs(self.state, connected=True))

    def on_action(self, action: ButtonAction) -> None:
        for command in commands_for(action, FAST, busy=self.state is S.SPEAKING, muted=self.state is S.MUTED):
            self.commands.append(command)
            self.state = {
                ButtonCommand.TALK: S.LISTENING,
                ButtonCommand.HOLD_TO_TALK: S.LISTENING,
                ButtonCommand.END_HOLD: S.THINKING,
                ButtonCommand.CANCEL_HOLD: S.IDLE,
                ButtonCommand.STOP: S.IDLE,
                ButtonCommand.PRIVACY_TOGGLE: S.IDLE if self.state is S.MUTED else S.MUTED,
            }.get(command, self.state)
        self.presenter.update(LedInputs(self.state, connected=True))


async def test_tap_hold_and_long_press_drive_the_ring(
    plain_mock_factory: Any, apa102: Apa102Listener
) -> None:
    async with asyncio.timeout(10):
        ring = Apa102Ring(
            LedSettings(kind="apa102", pixels=3, brightness=1.0), pin_factory=plain_mock_factory
        )
        app = _Appliance(LedPresenter(ring))
        button = GpioButton(
            FAST, app.on_action, loop=asyncio.get_running_loop(), pin_factory=plain_mock_factory
        )
        pin = plain_mock_factory.pin(17)
        try:
            assert apa102.colors() == [OFF] * 3

            # tap -> TAP dialog: listening blue
            pin.drive_low()
            await asyncio.sleep(0.05)
            pin.drive_high()
            await asyncio.sleep(0.05)
            assert app.commands == [ButtonCommand.TALK]
            assert apa102.colors() == [BLUE] * 3

            # tap while speaking -> stop
            app.state = S.SPEAKING
            pin.drive_low()
            await asyncio.sleep(0.05)
            pin.drive_high()
            await asyncio.sleep(0.05)
            assert app.commands[-1] is ButtonCommand.STOP
            assert apa102.colors() == [OFF] * 3

            # hold -> listening while held; release -> thinking (a spinning ring)
            pin.drive_low()
            await asyncio.sleep(0.22)
            assert app.commands[-1] is ButtonCommand.HOLD_TO_TALK
            assert apa102.colors() == [BLUE] * 3
            pin.drive_high()
            await asyncio.sleep(0.05)
            assert app.commands[-1] is ButtonCommand.END_HOLD
            assert app.state is S.THINKING
            blues = sorted(b for _, _, b in apa102.colors())
            assert blues[-1] == 255 and 0 < blues[0] < blues[1] < 255  # a bright head and a fading tail

            # long press -> the capture is cancelled and the microphone muted: solid red
            app.state = S.IDLE
            pin.drive_low()
            await asyncio.sleep(0.5)
            assert app.commands[-2:] == [ButtonCommand.CANCEL_HOLD, ButtonCommand.PRIVACY_TOGGLE]
            assert app.state is S.MUTED
            assert apa102.colors() == [RED] * 3
            pin.drive_high()
            await asyncio.sleep(0.05)
            assert apa102.colors() == [RED] * 3  # the release after a long press does nothing

            # a second long press unmutes
            pin.drive_low()
            await asyncio.sleep(0.5)
            pin.drive_high()
            await asyncio.sleep(0.05)
            assert app.state is S.IDLE
            assert apa102.colors() == [OFF] * 3

        finally:
            button.close()
            ring.close()
