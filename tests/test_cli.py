"""The command line: exit codes, one-line errors, `avsd config`, `avsd devices`, `avsd stop` without a daemon."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from avsd.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from avsd.config import defaults_toml

COMMITTED = Path(__file__).resolve().parent.parent / "config" / "avsd.toml"


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ("[daemon]\nlog_level = 'loud'\n", "daemon.log_level", "debug, info, warning, error"),
        ("[button]\npin = 'GPIO17'\n", "button.pin", 'integer or "none"'),
        ("[speaker]\nvolume_step = 500\n", "speaker.volume_step", "1..50"),
        ("[wake]\nbogus = 1\n", "wake.bogus", "allowed keys here"),
        ("[avs\n", "", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_and_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, key: str, allowed: str
) -> None:
    path = tmp_path / "avsd.toml"
    path.write_text(toml)
    assert main(["run", "--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"avsd: {key}") and allowed in err


def test_missing_credentials_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "avsd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n')
    assert main(["run", "--config", str(path)]) == EXIT_CONFIG
    assert "run `avsd login` first" in capsys.readouterr().err


def test_config_defaults_prints_the_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--defaults"]) == EXIT_OK
    assert capsys.readouterr().out == defaults_toml() == COMMITTED.read_text(encoding="utf-8")


def test_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[speaker]\nvolume_step = 5\n")
    bad.write_text("[speaker]\nvolume_step = 0\n")
    assert main(["config", "--check", str(good)]) == EXIT_OK
    assert main(["config", "--check", str(bad)]) == EXIT_CONFIG
    assert "speaker.volume_step" in capsys.readouterr().err


def test_stop_without_a_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "avsd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n')
    assert main(["stop", "--config", str(path)]) == EXIT_FAILURE
    assert "avsd is not running" in capsys.readouterr().err


def test_login_needs_a_client_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "avsd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n')
    assert main(["login", "--config", str(path)]) == EXIT_CONFIG
    assert "auth.client_id" in capsys.readouterr().err


def test_no_command_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "usage" in capsys.readouterr().err


def test_devices_lists_inputs_and_outputs(tmp_path: Path) -> None:
    """Through real PortAudio + ALSA, with a file-plugin default device (ALSA reads its config once per process,
    so this runs in a subprocess with its own HOME)."""
    pytest.importorskip("pyaudio", reason="PyAudio/PortAudio not installed")
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "in.raw").write_bytes(bytes(3200))
    (home / ".asoundrc").write_text(textwrap.dedent(f"""
        pcm.!default {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "{tmp_path / "in.raw"}"
            format "raw"
        }}
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "avsd", "devices"], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True, timeout=30, check=False, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    inputs, _, outputs = proc.stdout.partition("Output devices")
    assert inputs.startswith("Input devices") and "default" in inputs
    assert "default" in outputs
