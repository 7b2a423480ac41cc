"""LED drivers behind one small protocol: ``show(pattern)`` and ``close()``.

Drivers never animate by themselves (no gpiozero ``blink``/``pulse`` background threads): an animated pattern
runs as one asyncio task on the daemon's loop that samples the pure :func:`~avsd.hw.patterns.frame_at` and
writes only frames that changed. ``show`` and ``close`` are therefore called on the loop thread. Without a
running loop (a script, a sync test) an animated pattern shows its first frame and stays there.

Kinds: a single LED (on/off, or PWM), an RGB LED (PWM), the APA102 ring of the ReSpeaker 2-mic (3 px) and
4-mic (12 px) HATs over SPI, the terminal (for ``--hardware mock``), and nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from avsd.errors import ConfigError
from avsd.hw.factory import call_gpio, gpio_errors
from avsd.hw.patterns import OFF_RGB, PATTERNS, RGB, LedInputs, LedPattern, Pattern, frame_at, pattern_for

logger = logging.getLogger(__name__)

LED_KINDS = ("none", "single", "rgb", "apa102", "terminal")
OFF = PATTERNS[LedPattern.IDLE]


class Led(Protocol):
    def show(self, pattern: Pattern) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LedSettings:
    kind: str = field(default="none", metadata={"help": "LED hardware", "choices": LED_KINDS})
    pins: tuple[int, ...] = field(
        default=(),
        metadata={"help": "BCM pins: one for 'single', red/green/blue for 'rgb'; unused for 'apa102'"},
    )
    brightness: float = field(
        default=0.5, metadata={"help": "overall brightness 0..1", "min": 0.0, "max": 1.0}
    )
    pixels: int = field(
        default=3,
        metadata={
            "help": "APA102 pixels: 3 on the ReSpeaker 2-mic HAT, 12 on the 4-mic",
            "min": 1,
            "max": 255,
        },
    )
    pwm: bool = field(
        default=True, metadata={"help": "dim single/RGB LEDs with PWM (needed for pulse effects)"}
    )
    active_high: bool = field(
        default=True, metadata={"help": "false for common-anode RGB LEDs / active-low wiring"}
    )
    spi_port: int = field(default=0, metadata={"help": "APA102 SPI bus", "min": 0, "max": 6})
    spi_device: int = field(
        default=1, metadata={"help": "APA102 SPI chip select (ReSpeaker: 1)", "min": 0, "max": 2}
    )
    power_pin: int | None = field(
        default=None, metadata={"help": "pin that powers the LEDs (ReSpeaker 4-mic HAT: 5); -1 or \"none\" = none"}
    )
    fps: float = field(default=25.0, metadata={"help": "animation frame rate", "min": 1.0, "max": 60.0})

    def __post_init__(self) -> None:
        if self.kind not in LED_KINDS:
            raise ConfigError("led.kind", f"must be one of {', '.join(LED_KINDS)}, got {self.kind!r}")
        wanted = {"single": 1, "rgb": 3}.get(self.kind)
        if wanted is not None and len(self.pins) != wanted:
            raise ConfigError("led.pins", f"kind {self.kind!r} needs {wanted} pin(s), got {list(self.pins)}")
        if not 0.0 <= self.brightness <= 1.0:
            raise ConfigError("led.brightness", f"must be within 0..1, got {self.brightness}")
        if self.pixels < 1:
            raise ConfigError("led.pixels", f"must be >= 1, got {self.pixels}")


class AnimatedLed:
    """Base for drivers: holds the current pattern and runs its animation task. Subclasses implement
    ``_write``."""

    def __init__(
        self, n_pixels: int, *, fps: float = 25.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.n_pixels = n_pixels
        self._frame_s = 1.0 / fps
        self._clock = clock
        self._pattern: Pattern | None = None
        self._last: list[RGB] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pattern(self) -> Pattern | None:
        return self._pattern

    def show(self, pattern: Pattern) -> None:
        if self._closed or pattern == self._pattern:
            return
        self._stop_task()
        self._pattern = pattern
        start = self._clock()
        self._put(frame_at(pattern, 0.0, self.n_pixels))
        if pattern.animated:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._task = loop.create_task(self._animate(pattern, start), name=f"led-{pattern.name}")

    def close(self) -> None:
        if self._closed:
            return
        self._stop_task()
        with contextlib.suppress(Exception):  # best effort: the LEDs go dark on the way out
            self._put(frame_at(OFF, 0.0, self.n_pixels))
        self._closed = True
        self._close_device()

    async def _animate(self, pattern: Pattern, start: float) -> None:
        while True:
            await asyncio.sleep(self._frame_s)
            self._put(frame_at(pattern, self._clock() - start, self.n_pixels))

    def _put(self, frame: list[RGB]) -> None:
        if frame != self._last:
            self._last = frame
            self._write(frame)

    def _stop_task(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _write(self, frame: Sequence[RGB]) -> None:
        raise NotImplementedError

    def _close_device(self) -> None:
        pass


def _level(color: RGB) -> float:
    return max(color) / 255.0


class SingleLed(AnimatedLed):
    """One monochrome LED: a pattern's colour becomes its brightness (PWM) or on/off (at half brightness)."""

    def __init__(self, settings: LedSettings, *, pin_factory: object | None = None) -> None:
        super().__init__(1, fps=settings.fps)
        self._brightness = settings.brightness
        self._pwm = settings.pwm
        with gpio_errors(f"LED on GPIO{settings.pins[0]}"):
            from gpiozero import LED, PWMLED

            cls = PWMLED if settings.pwm else LED
            self._device: Any = cls(
                settings.pins[0], active_high=settings.active_high, pin_factory=pin_factory
            )

    def _write(self, frame: Sequence[RGB]) -> None:
        level = _level(frame[0])
        if self._pwm:
            call_gpio("LED", lambda: setattr(self._device, "value", level * self._brightness))
        else:
            call_gpio("LED", self._device.on if level >= 0.5 else self._device.off)

    def _close_device(self) -> None:
        call_gpio("closing the LED", self._device.close)


class RgbLed(AnimatedLed):
    """One RGB LED on three (PWM) pins."""

    def __init__(self, settings: LedSettings, *, pin_factory: object | None = None) -> None:
        super().__init__(1, fps=settings.fps)
        self._brightness = settings.brightness
        self._pwm = settings.pwm
        red, green, blue = settings.pins
        with gpio_errors(f"RGB LED on GPIO{red}/{green}/{blue}"):
            from gpiozero import RGBLED

            self._device: Any = RGBLED(
                red, green, blue, active_high=settings.active_high, pwm=settings.pwm, pin_factory=pin_factory
            )

    def _write(self, frame: Sequence[RGB]) -> None:
        if self._pwm:
            value = tuple(c / 255.0 * self._brightness for c in frame[0])
        else:
            value = tuple(1.0 if c >= 128 else 0.0 for c in frame[0])
        call_gpio("RGB LED", lambda: setattr(self._device, "value", value))

    def _close_device(self) -> None:
        call_gpio("closing the RGB LED", self._device.close)


def apa102_words(frame: Sequence[RGB], global_brightness: int) -> list[int]:
    """The SPI bytes for one APA102 frame. Pure.

    Start frame: 32 zero bits. Each pixel: ``0b111`` + 5-bit global brightness, then **blue, green, red**. End
    frame: at least n/2 extra clock edges to shift the data through the chain; zeros (not the 0xFF of many
    examples) so SK9822 clones reset cleanly and a longer strip never sees a stray white pixel.
    """
    if not 0 <= global_brightness <= 31:
        raise ValueError(f"APA102 global brightness is 5 bits, got {global_brightness}")
    words = [0x00] * 4
    for red, green, blue in frame:
        words += [0xE0 | global_brightness, blue, green, red]
    return words + [0x00] * (4 + (len(frame) + 15) // 16)


def global_brightness(brightness: float) -> int:
    """0..1 -> APA102's 5-bit level; any non-zero brightness stays visible."""
    return 0 if brightness <= 0 else max(1, round(brightness * 31))


class Apa102Ring(AnimatedLed):
    """The APA102 pixels of the ReSpeaker HATs, through gpiozero's SPI (spidev/lgpio hardware SPI on a Pi)."""

    def __init__(
        self, settings: LedSettings, *, pin_factory: object | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(settings.pixels, fps=settings.fps, clock=clock)
        self._global = global_brightness(settings.brightness)
        self._power: Any = None
        with gpio_errors(f"APA102 on SPI{settings.spi_port}.{settings.spi_device}"):
            from gpiozero import Device, DigitalOutputDevice

            if settings.power_pin is not None:
                self._power = DigitalOutputDevice(
                    settings.power_pin, initial_value=True, pin_factory=pin_factory
                )
            if pin_factory is None:
                Device.ensure_pin_factory()
                pin_factory = Device.pin_factory
            factory: Any = pin_factory
            self._spi: Any = factory.spi(port=settings.spi_port, device=settings.spi_device)

    def _write(self, frame: Sequence[RGB]) -> None:
        words = apa102_words(frame, self._global)
        call_gpio("APA102 write", lambda: self._spi.write(words))

    def _close_device(self) -> None:
        call_gpio("closing the APA102 SPI", self._spi.close)
        if self._power is not None:
            call_gpio("switching the LED power off", self._power.off)
            call_gpio("closing the LED power pin", self._power.close)


class TerminalLed(AnimatedLed):
    """Draws the LEDs in the terminal (``--hardware mock``): coloured dots on one line, redrawn in place.

    On a non-terminal stream (a log file, a pipe) it writes one plain line per pattern change instead.
    """

    def __init__(self, n_pixels: int = 3, *, stream: TextIO | None = None, fps: float = 10.0) -> None:
        super().__init__(n_pixels, fps=fps)
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()

    def show(self, pattern: Pattern) -> None:
        if not self._tty and not self._closed and pattern != self.pattern:
            self._stream.write(f"[leds] {pattern.name}: {pattern.effect} rgb{pattern.color}\n")
            self._stream.flush()
        super().show(pattern)

    def _write(self, frame: Sequence[RGB]) -> None:
        if not self._tty:
            return
        dots = "".join(
            f"\x1b[38;2;{r};{g};{b}m●\x1b[0m" if (r, g, b) != OFF_RGB else "○" for r, g, b in frame
        )
        name = self.pattern.name if self.pattern is not None else ""
        self._stream.write(f"\r\x1b[2K[leds] {dots} {name}")
        self._stream.flush()

    def _close_device(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


class RecordingLed:
    """A test double that records every pattern shown."""

    def __init__(self) -> None:
        self.shown: list[Pattern] = []
        self.closed = False

    @property
    def current(self) -> Pattern | None:
        return self.shown[-1] if self.shown else None

    def show(self, pattern: Pattern) -> None:
        self.shown.append(pattern)

    def close(self) -> None:
        self.closed = True


class NullLed:
    """``kind = "none"``."""

    def show(self, pattern: Pattern) -> None:
        pass

    def close(self) -> None:
        pass


class LedPresenter:
    """Maps the device's state to a pattern and shows it when it changes. The daemon calls :meth:`update` from
    its state observer (on the loop thread)."""

    def __init__(self, led: Led) -> None:
        self._led = led
        self._current: Pattern | None = None

    def update(self, inputs: LedInputs) -> Pattern:
        pattern = pattern_for(inputs)
        if pattern != self._current:
            self._current = pattern
            logger.debug("leds: %s", pattern.name)
            self._led.show(pattern)
        return pattern
