"""The config file: typed parsing, one error naming the key, and config/avsd.toml generated from the dataclasses."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from avsd.config import Config, changed_sections, defaults_toml, load_config, override, parse_config
from avsd.errors import ConfigError
from avsd.focus import ContentPolicy

COMMITTED = Path(__file__).resolve().parent.parent / "config" / "avsd.toml"


def test_committed_file_is_the_generated_one() -> None:
    # If this fails: `avsd config --defaults > config/avsd.toml` after changing a settings dataclass.
    assert COMMITTED.read_text(encoding="utf-8") == defaults_toml()


def test_generated_file_parses_back_to_the_defaults() -> None:
    assert parse_config(tomllib.loads(defaults_toml())) == Config()


def test_every_section_and_key_is_documented() -> None:
    doc = tomllib.loads(defaults_toml())

    def keys(obj: Any, prefix: str) -> set[str]:
        out: set[str] = set()
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            out |= keys(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else {prefix + f.name}
        return out

    def doc_keys(table: dict[str, Any], prefix: str) -> set[str]:
        out: set[str] = set()
        for k, v in table.items():
            out |= doc_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
        return out

    assert doc_keys(doc, "") == keys(Config(), "")
    for section in ("focus", "speaker", "audio_player", "notifications", "alerts", "capabilities", "sequencer"):
        assert section in doc


def test_secret_fields_are_left_empty_with_a_comment() -> None:
    text = defaults_toml(override(Config(), "wake.porcupine_access_key", "pv-very-secret"))
    assert "pv-very-secret" not in text
    assert 'porcupine_access_key = ""' in text
    assert "# secret:" in text


@pytest.mark.parametrize(
    ("doc", "key", "words"),
    [
        ({"nosuch": {}}, "nosuch", "unknown key"),
        ({"daemon": {"colour": "red"}}, "daemon.colour", "allowed keys here"),
        ({"daemon": {"log_level": "loud"}}, "daemon.log_level", "debug, info, warning, error"),
        ({"speaker": {"volume_step": 0}}, "speaker.volume_step", "below the minimum 1 (allowed 1..50)"),
        ({"alerts": {"volume": 101}}, "alerts.volume", "above the maximum 100"),
        ({"button": {"pin": "seventeen"}}, "button.pin", 'integer or "none"'),
        ({"button": {"pin": True}}, "button.pin", "expected"),
        ({"button": {"hold_s": 4.0, "long_press_s": 3.0}}, "button.hold_s", "shorter than"),
        ({"focus": {"content_policy": "mute"}}, "focus.content_policy", "pause, duck"),
        ({"avs": {"backoff_s": [1, "x"]}}, "avs.backoff_s", "list of number"),
        ({"dialog": {"timeouts": {"thinking_s": 0}}}, "dialog.timeouts.thinking_s", "minimum"),
        ({"sequencer": {"queue_size": 2}}, "sequencer.queue_size", "minimum 4"),
        ({"led": {"kind": "neon"}}, "led.kind", "none, single, rgb, apa102, terminal"),
    ],
)
def test_bad_values_name_the_key(doc: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert str(info.value).startswith(key + ":")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("doc", "path", "expected"),
    [
        ({"button": {"pin": -1}}, ("button", "pin"), None),
        ({"button": {"pin": "none"}}, ("button", "pin"), None),
        ({"button": {"pin": "None"}}, ("button", "pin"), None),
        ({"button": {"pin": 27}}, ("button", "pin"), 27),
        ({"led": {"power_pin": 5}}, ("led", "power_pin"), 5),
        ({"wake": {"threshold": "none"}}, ("wake", "threshold"), None),
        ({"wake": {"threshold": 1}}, ("wake", "threshold"), 1.0),
        ({"focus": {"content_policy": "duck"}}, ("focus", "content_policy"), ContentPolicy.DUCK),
        ({"speaker": {"volume_step": 5}}, ("speaker", "volume_step"), 5),
        ({"dialog": {"timeouts": {"thinking_s": 4}}}, ("dialog", "timeouts"), None),  # checked below
    ],
)
def test_values_are_typed(doc: dict[str, Any], path: tuple[str, str], expected: Any) -> None:
    config = parse_config(doc)
    value = getattr(getattr(config, path[0]), path[1])
    if path == ("dialog", "timeouts"):
        assert value.thinking_s == 4.0 and isinstance(value.thinking_s, float)
    else:
        assert value == expected
        assert type(value) is type(expected)


def test_load_config_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_changed_sections() -> None:
    old = Config()
    new = override(override(old, "speaker.volume_step", 20), "avs.endpoint", "EU")
    assert changed_sections(old, new) == ["avs", "speaker"]
    assert changed_sections(old, old) == []


def test_device_serial_is_stable_and_derived(tmp_path: Path) -> None:
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef\n")
    serial = Config().device_serial_number(machine_id)
    assert serial.startswith("avsd-") and serial == Config().device_serial_number(machine_id)
    machine_id.write_text("fedcba9876543210\n")
    assert Config().device_serial_number(machine_id) != serial
    assert override(Config(), "auth.device_serial_number", "rpi-1").device_serial_number(machine_id) == "rpi-1"


def test_override_changes_one_key_of_a_section_with_a_nested_table() -> None:
    changed = override(Config(), "dialog.audio_format", "OPUS")
    assert changed.dialog.audio_format == "OPUS"
    assert changed.dialog.timeouts == Config().dialog.timeouts
    with pytest.raises(ConfigError, match=r"dialog\.audio_format"):
        override(Config(), "dialog.audio_format", "MP3")
