"""Pin factory selection, including the Raspberry Pi 5 case (lgpio or nothing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from avsd.hw.factory import HardwareError, board_model, pin_factory_for

HAS_LGPIO = importlib.util.find_spec("lgpio") is not None


def test_mock_factory_has_pwm_pins() -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = pin_factory_for("mock")
    assert isinstance(factory, MockFactory)
    assert isinstance(factory.pin(18), MockPWMPin)
    factory.close()


def test_unknown_factory() -> None:
    with pytest.raises(HardwareError, match="unknown pin factory"):
        pin_factory_for("wiringpi")


@pytest.mark.skipif(
    HAS_LGPIO, reason="lgpio is installed here, so the missing-lgpio paths cannot be exercised"
)
def test_missing_lgpio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.raises(HardwareError, match="lgpio"):
        pin_factory_for("lgpio")
    pi5 = tmp_path / "model"
    pi5.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    with pytest.raises(HardwareError, match="Pi 5 needs the lgpio"):
        pin_factory_for("auto", model_path=pi5)
    pi4 = tmp_path / "model4"
    pi4.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    assert pin_factory_for("auto", model_path=pi4) is None  # gpiozero's own fallback order


def test_auto_honours_the_gpiozero_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    pi5 = tmp_path / "model"
    pi5.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    assert pin_factory_for("auto", model_path=pi5) is None


def test_board_model(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi Zero 2 W Rev 1.0\0")
    assert board_model(model) == "Raspberry Pi Zero 2 W Rev 1.0"
    assert board_model(tmp_path / "absent") == ""
