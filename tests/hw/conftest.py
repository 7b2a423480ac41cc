"""MockFactory with PWM-capable pins, fresh for every test, and an APA102 listener on its SPI pins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from avsd.hw.factory import pin_factory_for
from tests.virtual_time import VirtualTime

__all__ = ["Apa102Listener", "VirtualTime"]


@pytest.fixture
def mock_factory() -> Iterator[Any]:
    factory: Any = pin_factory_for("mock")
    yield factory
    factory.close()
    factory.reset()


class Apa102Listener:
    """The slave side of the APA102 chain on MockFactory's software SPI: records each transfer as bytes."""

    def __init__(self, factory: Any, select_pin: int = 7) -> None:
        from gpiozero.pins.mock import MockSPIDevice

        outer = self

        class _Device(MockSPIDevice):  # type: ignore[misc]
            def on_start(self) -> None:
                super().on_start()
                outer.transfers.append([])

            def on_bit(self) -> None:
                if self.rx_bit % 8 == 0:
                    byte = 0
                    for bit in self.rx_buf[-8:]:
                        byte = byte << 1 | int(bit)
                    outer.transfers[-1].append(byte)

        self.transfers: list[list[int]] = []
        self.device = _Device(11, 10, None, select_pin, pin_factory=factory)

    def pixels(self, index: int = -1) -> list[tuple[int, int, int, int]]:
        """Decode one transfer into (brightness, r, g, b) per pixel."""
        data = self.transfers[index]
        assert data[:4] == [0, 0, 0, 0], "start frame"
        out = []
        i = 4
        while i + 4 <= len(data) and data[i] & 0xE0 == 0xE0:
            out.append((data[i] & 0x1F, data[i + 3], data[i + 2], data[i + 1]))
            i += 4
        assert all(b == 0 for b in data[i:]), "end frame"
        return out

    def colors(self, index: int = -1) -> list[tuple[int, int, int]]:
        return [(r, g, b) for _, r, g, b in self.pixels(index)]


@pytest.fixture
def plain_mock_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """MockFactory with plain (non-PWM) pins, which software SPI and MockSPIDevice need.

    Also gpiozero's default factory: its software SPI bus builds a Device without passing the factory on
    (gpiozero 2.0.1, pins/spi.py), which fails on a machine where no real factory loads.
    """
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    factory: Any = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    yield factory
    factory.close()
    factory.reset()


@pytest.fixture
def apa102(plain_mock_factory: Any) -> Apa102Listener:
    return Apa102Listener(plain_mock_factory)
