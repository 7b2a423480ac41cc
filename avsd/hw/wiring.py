"""The button and the LEDs wired to a running daemon (``avsd run --hardware auto|mock|none``).

    GpioButton --gesture--> commands_for() --command--> apply_command() --> dialog.tap()/hold_start()/...
                                                                            alerts.stop_active()
    dialog transitions, connection, ringing alert, notification indicator --> LedInputs --> LedPresenter --> Led

The composition root (:func:`avsd.root.build_hardware`) picks the pin factory and the LED driver: ``mock`` runs
anywhere, with gpiozero's MockFactory pins (tests press the button through ``factory.pin(n)``) and a TerminalLed
drawing the pattern on stderr. The LEDs show facts owned elsewhere (dialog state, connection, ringing alert,
notification indicator); every change of one re-reads them all from their owners.

Everything here runs on the loop thread: GpioButton already hops from gpiozero's thread with
``call_soon_threadsafe``; the agents' observers are called on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from avsd.avs.client import ConnectionState
from avsd.hw.button import ButtonAction, ButtonCommand, ButtonSettings, GpioButton, commands_for
from avsd.hw.factory import HardwareError
from avsd.hw.leds import Led, LedPresenter
from avsd.hw.patterns import LedInputs, Pattern
from avsd.state import DialogState
from avsd.tasks import TaskSet

_LOGGER = logging.getLogger(__name__)

HARDWARE_KINDS = ("auto", "mock", "none")


class ButtonTarget(Protocol):
    """What a button command acts on (the daemon's dialog controller and alerts agent)."""

    def tap(self) -> None: ...

    def hold_start(self) -> None: ...

    def hold_end(self) -> None: ...

    def stop(self) -> None: ...

    def toggle_mute(self) -> None: ...

    def stop_alert(self) -> bool:
        """Stop a ringing alert; False when none rings."""
        ...


def apply_command(command: ButtonCommand, target: ButtonTarget) -> None:
    """One button command. A stop silences a ringing alert first (it is the loudest thing the user hears)."""
    match command:
        case ButtonCommand.TALK:
            target.tap()
        case ButtonCommand.HOLD_TO_TALK:
            target.hold_start()
        case ButtonCommand.END_HOLD:
            target.hold_end()
        case ButtonCommand.CANCEL_HOLD:
            target.stop()  # the hold became a long press: abandon the capture, answer nothing
        case ButtonCommand.STOP:
            if not target.stop_alert():
                target.stop()
        case ButtonCommand.PRIVACY_TOGGLE:
            target.toggle_mute()
        case ButtonCommand.NONE:
            pass


class DaemonTarget:
    """:class:`ButtonTarget` over a :class:`~avsd.daemon.Daemon` (duck-typed to keep hw free of the daemon)."""

    def __init__(self, daemon: Any) -> None:
        self._daemon = daemon
        self._tasks = TaskSet(_LOGGER)

    def tap(self) -> None:
        self._daemon.dialog.tap()

    def hold_start(self) -> None:
        self._daemon.dialog.hold_start()

    def hold_end(self) -> None:
        self._daemon.dialog.hold_end()

    def stop(self) -> None:
        self._daemon.dialog.stop()

    def toggle_mute(self) -> None:
        self._daemon.dialog.toggle_mute()

    def stop_alert(self) -> bool:
        if self._daemon.alerts.active_token is None:
            return False
        self._tasks.spawn(self._daemon.alerts.stop_active(), "stop-alert")
        return True

    @property
    def busy(self) -> bool:
        """Alexa is speaking or an alert rings: a tap stops rather than talks."""
        return self._daemon.dialog.state is DialogState.SPEAKING or self._daemon.alerts.active_token is not None

    @property
    def muted(self) -> bool:
        return bool(self._daemon.dialog.machine.muted)


class Hardware:
    """The button (optional) and the LEDs of one daemon. :meth:`close` turns the LEDs off and frees the pins.

    The LED driver and the pin factory are chosen by the composition root (:func:`avsd.root.build_hardware`)."""

    def __init__(
        self,
        daemon: Any,
        *,
        kind: str,
        button: ButtonSettings,
        loop: asyncio.AbstractEventLoop,
        led: Led,
        pin_factory: object | None = None,
        owns_factory: bool = False,
    ) -> None:
        self.kind = kind
        self.target = DaemonTarget(daemon)
        self._daemon = daemon
        self._settings = button
        self.pin_factory = pin_factory
        self._owns_factory = owns_factory
        self.button: GpioButton | None = None
        self.actions: list[ButtonAction] = []
        self.commands: list[ButtonCommand] = []
        self.led = led
        self.presenter = LedPresenter(self.led)
        if kind != "none" and button.pin is not None:
            try:
                self.button = GpioButton(button, self._on_action, loop=loop, pin_factory=self.pin_factory)
            except HardwareError as exc:
                # Voice still works without the button: say so once and go on.
                _LOGGER.error("no button: %s", exc)
        # The LEDs show facts owned elsewhere; each change of one re-reads them all from their owners.
        daemon.dialog.machine.add_observer(self._on_change, name="Hardware LEDs")
        daemon.client.add_state_observer(self._on_change)
        daemon.alerts.ringing_observers.add(self._on_change, name="Hardware LEDs")
        daemon.notifications.add_observer(self._on_change)
        self._update()

    @property
    def pattern(self) -> Pattern | None:
        return getattr(self.led, "pattern", None)

    def inputs(self) -> LedInputs:
        daemon = self._daemon
        return LedInputs(
            daemon.dialog.state,
            daemon.client.state is ConnectionState.CONNECTED,
            daemon.alerts.active_token is not None,
            bool(daemon.notifications.indicator_on),
        )

    def _update(self) -> None:
        self.presenter.update(self.inputs())

    def _on_change(self, _news: object) -> None:
        self._update()

    def _on_action(self, action: ButtonAction) -> None:
        self.actions.append(action)
        for command in commands_for(
            action, self._settings, busy=self.target.busy, muted=self.target.muted
        ):
            _LOGGER.info("button %s -> %s", action, command)
            self.commands.append(command)
            apply_command(command, self.target)

    def reconfigure(self, button: ButtonSettings, loop: asyncio.AbstractEventLoop) -> None:
        """A reload changed the button settings: recreate the button (the pins stay with the same factory)."""
        if button == self._settings:
            return
        if self.button is not None:
            self.button.close()
            self.button = None
        self._settings = button
        if self.kind != "none" and button.pin is not None:
            try:
                self.button = GpioButton(button, self._on_action, loop=loop, pin_factory=self.pin_factory)
            except HardwareError as exc:
                _LOGGER.error("no button: %s", exc)

    def close(self) -> None:
        if self.button is not None:
            self.button.close()
            self.button = None
        self.led.close()
        close: Callable[[], None] | None = getattr(self.pin_factory, "close", None)
        if self._owns_factory and close is not None:
            close()
            from gpiozero import Device

            if Device.pin_factory is self.pin_factory:
                Device.pin_factory = None
