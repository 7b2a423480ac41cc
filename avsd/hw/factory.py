"""gpiozero pin factories, and the one place gpiozero's exceptions become avsd's.

On a Raspberry Pi 5 the GPIO block sits behind the RP1 chip and RPi.GPIO fails with "Cannot determine SOC
peripheral base address" (gpiozero#1172, raspberrypi/linux#6347); only the lgpio factory (``/dev/gpiochip*``)
works there. ``auto`` therefore prefers lgpio and refuses to silently fall back on a Pi 5.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from avsd.errors import AvsdError

logger = logging.getLogger(__name__)

FACTORY_KINDS = ("auto", "mock", "lgpio", "rpigpio", "pigpio", "native")

_FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
}

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


class HardwareError(AvsdError):
    """A GPIO pin, pin factory, LED or SPI device could not be set up or driven. (New leaf, defined here.)"""

    code = "hardware"


T = TypeVar("T")


@contextmanager
def gpio_errors(what: str) -> Iterator[None]:
    """Translate gpiozero (and lgpio/spidev OS) failures into :class:`HardwareError`, ``from exc``."""
    try:
        yield
    except HardwareError:
        raise
    except ImportError as exc:
        raise HardwareError(f"{what}: {exc} (install avsd with the 'gpio' extra)") from exc
    except Exception as exc:  # gpiozero's GPIOZeroError tree, and OSError/ValueError from the backends
        raise HardwareError(f"{what}: {type(exc).__name__}: {exc}") from exc


def call_gpio(what: str, fn: Callable[[], T]) -> T:
    with gpio_errors(what):
        return fn()


def board_model(path: Path = DEVICE_TREE_MODEL) -> str:
    try:
        return path.read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        return ""


def pin_factory_for(kind: str, *, model_path: Path = DEVICE_TREE_MODEL) -> object | None:
    """A gpiozero pin factory for ``kind`` (one of :data:`FACTORY_KINDS`), or None for gpiozero's default.

    - ``mock``: gpiozero's MockFactory with PWM-capable pins (so PWM and RGB LEDs work on any machine).
    - ``auto``: honour ``GPIOZERO_PIN_FACTORY`` if set; else lgpio when importable; else gpiozero's default
      order, except on a Pi 5 where nothing but lgpio works, which is a :class:`HardwareError` naming the fix.
    - any other name: that factory, or a :class:`HardwareError`.
    """
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        mock: object = MockFactory(pin_class=MockPWMPin)
        return mock
    if kind == "auto":
        if os.environ.get("GPIOZERO_PIN_FACTORY"):
            return None
        try:
            return _make("lgpio")
        except HardwareError as exc:
            if "Raspberry Pi 5" in board_model(model_path):
                raise HardwareError(
                    "the Raspberry Pi 5 needs the lgpio pin factory: apt install python3-lgpio "
                    "or pip install lgpio into avsd's virtual environment"
                ) from exc
            logger.info("lgpio pin factory unavailable (%s); using gpiozero's default", exc)
            return None
    if kind not in _FACTORIES:
        raise HardwareError(f"unknown pin factory {kind!r}; choose one of {', '.join(FACTORY_KINDS)}")
    return _make(kind)


def _make(kind: str) -> object:
    module_name, class_name = _FACTORIES[kind]
    with gpio_errors(f"pin factory {kind}"):
        module = importlib.import_module(module_name)
        factory: object = getattr(module, class_name)()
    return factory
