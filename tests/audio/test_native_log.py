"""libasound's and libjack's own stderr printing goes to avsd's log: on a machine without a sound card,
`avsd devices` prints one "no sound card found" line instead of ~30 ``ALSA lib ...`` and 5 JACK lines."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avsd.audio.native_log import NO_CARD_MESSAGE

ROOT = Path(__file__).resolve().parents[2]


def _has_sound_card() -> bool:
    try:
        return "no soundcards" not in Path("/proc/asound/cards").read_text()
    except OSError:
        return False


@pytest.mark.skipif(ctypes.util.find_library("asound") is None, reason="libasound2 is not installed")
@pytest.mark.skipif(_has_sound_card(), reason="this machine has a sound card: ALSA has nothing to complain about")
@pytest.mark.parametrize("command", [["devices"], ["doctor"]])
def test_no_sound_card_is_one_log_line(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    env.pop("JOURNAL_STREAM", None)
    result = subprocess.run(
        [sys.executable, "-m", "avsd", *command], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert "ALSA lib" not in result.stderr + result.stdout
    assert "jack server" not in result.stderr + result.stdout
    # No output device: the player fails the item once, it does not log a traceback per decoded block.
    assert "Traceback" not in result.stderr
    if command == ["doctor"]:  # the built-in defaults (HOME is empty): every check runs
        assert "speaker        FAIL" in result.stdout and "cannot open the default output device" in result.stdout
    if command == ["devices"]:
        assert result.returncode == 0
        assert [line for line in result.stderr.splitlines() if NO_CARD_MESSAGE in line] != []
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_handlers_install_once_and_log_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    from avsd.audio import native_log

    first = native_log.route_native_audio_errors()
    assert native_log.route_native_audio_errors() == first
    with caplog.at_level("DEBUG", logger="avsd.audio.native_log"):
        native_log._on_jack(b"jack server is not running")
        native_log._on_alsa(b"pcm.c", 2666, b"snd_pcm_open_noupdate", -2, b"Unknown PCM %s")
    assert "JACK: jack server is not running" in caplog.text
    assert "ALSA pcm.c:2666 (snd_pcm_open_noupdate) err=-2: Unknown PCM %s" in caplog.text
