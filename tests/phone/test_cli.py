"""``avsd phone`` and ``avsd phone-sim`` as real processes, with the README's commands as written."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avsd.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The telephone bridge") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_no_secret_is_a_config_error_naming_the_key(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("VONAGE_SIGNATURE_SECRET", raising=False)
    assert main(["phone", "--port", "0"]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("avsd: phone.twilio_auth_token: ")


def test_listening_beyond_loopback_needs_a_public_url(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "some-token")
    assert main(["phone", "--host", "0.0.0.0", "--port", "0"]) == 78
    assert capsys.readouterr().err.startswith("avsd: phone.public_url: required")


def test_avs_backend_without_login_exits_78(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "some-token")
    config = tmp_path / "avsd.toml"
    config.write_text(f'[auth]\ncredentials_file = "{tmp_path / "none.json"}"\n')
    assert main(["phone", "--backend", "avs", "--config", str(config), "--port", "0"]) == 78
    assert "none.json" in capsys.readouterr().err


def test_bad_config_value_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "avsd.toml"
    config.write_text("[phone]\nvonage_rate = 11025\n")
    assert main(["phone", "--config", str(config)]) == 78
    assert "phone.vonage_rate" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    """The README's two commands, with only the port swapped for a free one."""
    phone_cmd, sim_cmd = _readme_commands()
    port = str(_free_port())
    env = {**os.environ, "TWILIO_AUTH_TOKEN": "readme-example-token", "PYTHONPATH": str(ROOT)}
    env.pop("VONAGE_SIGNATURE_SECRET", None)

    def argv(command: str) -> list[str]:
        words = command.replace("8088", port).replace("/tmp/reply.wav", str(tmp_path / "reply.wav")).split()
        assert words[0] == ".venv/bin/avsd"
        return [sys.executable, "-m", "avsd", *[w for w in words[1:] if not w.startswith("TWILIO_AUTH_TOKEN=")]]

    bridge = subprocess.Popen(argv(phone_cmd), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert bridge.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "listening on" not in line:
            assert time.monotonic() < deadline and bridge.poll() is None, "the bridge did not start"
            line = bridge.stdout.readline()
        sim = subprocess.run(argv(sim_cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
        assert sim.returncode == 0, sim.stderr
        assert "<- first reply audio" in sim.stdout
        assert "-> mark reply-1 (played)" in sim.stdout
        assert (tmp_path / "reply.wav").stat().st_size > 16000  # more than a second at 8 kHz
    finally:
        bridge.send_signal(signal.SIGTERM)
        try:
            bridge.wait(20)
        except subprocess.TimeoutExpired:
            bridge.kill()
            bridge.wait(5)
    assert bridge.returncode == 0
