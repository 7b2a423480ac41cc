"""``--backend``: one definition, the same meaning on ``avsd demo`` and ``avsd run``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from avsd.backends import Backend, BackendSession, add_backend_argument, open_backend, session_config
from avsd.cli import build_parser, main
from avsd.config import Config
from avsd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_avsd_logger() -> Iterator[None]:
    """``main()`` configures the "avsd" logger (level, handler, no propagation): put it back for later tests."""
    logger = logging.getLogger("avsd")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:], logger.propagate = saved[1], saved[2]


def test_one_definition_on_every_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).backend is Backend.EMULATOR
    assert parser.parse_args(["run"]).backend is Backend.AVS
    assert parser.parse_args(["ask", "x.wav"]).backend is Backend.AVS
    for command in ("demo", "run", "ask"):
        args = parser.parse_args([command, "--backend", "emulator", "--scenario", "x.toml"])
        assert args.backend is Backend.EMULATOR and args.scenario == Path("x.toml")
    own = argparse.ArgumentParser()
    add_backend_argument(own, default=Backend.AVS)
    with pytest.raises(SystemExit):
        own.parse_args(["--backend", "alexa"])


def test_scenario_with_avs_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--backend", "avs", "--scenario", "config/scenarios/basic.toml"]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scenario" in err[0]


async def test_session_config_points_at_the_emulator_and_keeps_credentials_apart(tmp_path: Path) -> None:
    async with open_backend(Backend.EMULATOR, cert_dir=tmp_path / "certs") as session:
        assert session.emulator is not None and session.endpoint == session.emulator.base_url
        config = session_config(Config(), session, tmp_path)
        assert config.avs.endpoint == session.endpoint
        assert config.avs.ca_file == config.playback.ca_file == session.ca_file
        assert config.credentials_path == tmp_path / "credentials.json"
        assert session.refresh_token is not None
        assert session.refresh_token in config.credentials_path.read_text()
    avs = BackendSession(Backend.AVS)
    assert session_config(Config(), avs, tmp_path) == Config()
    with pytest.raises(ConfigError):
        async with open_backend(Backend.AVS, scenario_path=Path("x.toml")):
            pass


@pytest.mark.timeout(90)
async def test_run_against_the_emulator_backend(tmp_path: Path) -> None:
    """`avsd run --backend emulator --scenario basic.toml --input WAV`: connects to its own local server, the
    shipped recording gets the scenario's Speak, SIGTERM ends it with 0."""
    state_dir = tmp_path / "state"
    config = tmp_path / "avsd.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{state_dir}"\n[playback]\nbackend = "wav"\nwav_dir = "{tmp_path / "played"}"\n'
        "[button]\npin = -1\n"
    )
    wav = ROOT / "avsd" / "audio" / "assets" / "alexa-what-time-is-it.wav"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "run", "--config", str(config), "--backend", "emulator",
        "--scenario", str(ROOT / "config" / "scenarios" / "basic.toml"), "--input", str(wav), "--hardware", "none",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(60):
            async for raw in proc.stderr:
                lines.append(raw.decode(errors="replace"))
                if "SpeechSynthesizer.Speak" in lines[-1]:
                    break
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rc = await proc.wait()
    text = "".join(lines)
    assert "avsd run: emulator at https://127.0.0.1:" in text
    assert "SpeechSynthesizer.Speak" in text, text[-2000:]
    assert rc == 0
    assert not (state_dir / "credentials.json").exists()  # the emulator's token never replaced the device's


def test_demo_on_avs_without_credentials_is_one_line_and_78(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert main(["demo", "--backend", "avs", "--out", str(tmp_path / "out")]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "avsd login" in err[0]
