"""`avs.backend = "assistant"`: `avsd run` as a real process answers from the offline assistant in its own
process (no Amazon, no emulator started by the test); `avsd doctor` checks it; `avsd demo --backend assistant`
runs the README's session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from avsd.demo import ASSISTANT_WAV
from tests.fixtures import speechgen

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not speechgen.have_tools(), reason="needs espeak-ng and sox (scripts/apt-packages.txt)"),
]


def _avsd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "avsd", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "avsd.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[avs]\nbackend = "assistant"\n'
        f'[playback]\nbackend = "wav"\nwav_dir = "{tmp_path / "played"}"\n'
    )
    return config


def test_run_answers_from_the_assistant_in_process(tmp_path: Path) -> None:
    result = _avsd("run", "--config", str(_config(tmp_path)), "--input", str(ASSISTANT_WAV), "--hardware", "none")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "offline assistant listening on https://127.0.0.1:" in result.stderr
    assert "heard 'set a timer for five seconds' -> SetTimer" in result.stderr
    assert list((tmp_path / "played").glob("*.wav")), "the reply was not played"
    creds = tmp_path / "state" / "assistant" / "credentials.json"
    assert creds.stat().st_mode & 0o077 == 0
    assert not (tmp_path / "state" / "credentials.json").exists()  # Amazon's credentials file untouched


def test_doctor_checks_the_assistant(tmp_path: Path) -> None:
    result = _avsd("doctor", "--config", str(_config(tmp_path)), "--hardware", "none")
    assert "pocketsphinx grammar loaded and understood espeak-ng" in result.stdout, result.stdout + result.stderr


def test_readme_demo_session_sets_a_timer_that_rings() -> None:
    result = _avsd("demo", "--backend", "assistant")  # as written in the README (real time)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Alexa says: 'Timer set for 5 seconds.'" in result.stdout
    assert "Alerts.SetAlertSucceeded, Alerts.AlertStarted, Alerts.AlertStopped" in result.stdout


def test_bad_assistant_config_is_one_line_and_exit_78(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_text(config.read_text() + '[assistant]\nlocale = "xx-XX"\n')
    result = _avsd("run", "--config", str(config), "--input", str(ASSISTANT_WAV), "--hardware", "none")
    assert result.returncode == 78, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("avsd: assistant.locale: no assistant locale 'xx-XX'")
