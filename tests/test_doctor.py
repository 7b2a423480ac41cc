"""`avsd doctor`: every check passing against the emulator (microphone and speaker through ALSA's file plugin),
and failures reported with their remedy."""

from __future__ import annotations

import asyncio
import io
import math
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from avsd.avs.credentials import Credentials, save_credentials
from avsd.doctor import (
    CheckResult,
    DoctorContext,
    check_avs,
    check_config,
    check_credentials,
    check_gpio,
    check_token,
    check_wake_word,
    doctor,
    format_table,
    level_dbfs,
    run_checks,
)
from avsd.emulator.server import Emulator

NETWORK_CHECKS = (check_config, check_credentials, check_token, check_avs)


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(cert_dir=tmp_path / "certs") as emu:
        yield emu


def write_config(tmp_path: Path, emulator: Emulator, extra: str = "") -> Path:
    path = tmp_path / "avsd.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[avs]\nendpoint = "{emulator.base_url}"\nca_file = "{emulator.ca_file}"\n' + extra
    )
    return path


def link(tmp_path: Path, emulator: Emulator, refresh_token: str | None = None) -> None:
    save_credentials(
        tmp_path / "state" / "credentials.json", Credentials("avsd-test", refresh_token or emulator.refresh_token)
    )


@pytest.mark.parametrize(
    ("pcm", "expected"),
    [(b"", -math.inf), (bytes(3200), -math.inf), ((16384).to_bytes(2, "little", signed=True) * 100, -6.02)],
)
def test_level_dbfs(pcm: bytes, expected: float) -> None:
    level = level_dbfs(pcm)
    assert level == expected if math.isinf(expected) else abs(level - expected) < 0.01


def test_table_lists_remedies_of_failures_only() -> None:
    table = format_table([
        CheckResult("config", True, "ok file"),
        CheckResult("credentials", False, "missing", "run avsd login"),
        CheckResult("token refresh", False, "skipped: no credentials", "fix above", skipped=True),
    ])
    assert "config         PASS  ok file" in table
    assert "credentials    FAIL  missing" in table and "token refresh  SKIP" in table
    assert "  credentials: run avsd login" in table and "fix above" not in table


async def test_network_checks_pass_against_the_emulator(tmp_path: Path, emulator: Emulator) -> None:
    link(tmp_path, emulator)
    ctx = DoctorContext(write_config(tmp_path, emulator))
    async with asyncio.timeout(20):
        results = await run_checks(ctx, NETWORK_CHECKS)
    assert [r.ok for r in results] == [True] * 4, results
    assert "answers ping" in results[3].detail
    assert ctx.access_token is not None and ctx.access_token not in format_table(results)


async def test_bad_config_fails_with_the_key_and_skips_the_rest(tmp_path: Path, emulator: Emulator) -> None:
    path = write_config(tmp_path, emulator, "[speaker]\nvolume_step = 0\n")
    async with asyncio.timeout(20):
        results = await run_checks(DoctorContext(path), NETWORK_CHECKS)
    assert not results[0].ok and "speaker.volume_step" in results[0].detail
    assert "avsd config --defaults" in results[0].remedy
    assert all(r.skipped for r in results[1:])


async def test_missing_credentials_say_login(tmp_path: Path, emulator: Emulator) -> None:
    async with asyncio.timeout(20):
        results = await run_checks(DoctorContext(write_config(tmp_path, emulator)), NETWORK_CHECKS)
    assert results[0].ok
    assert not results[1].ok and "avsd login" in results[1].remedy
    assert results[2].skipped and results[3].skipped


async def test_revoked_refresh_token_fails_the_refresh(tmp_path: Path, emulator: Emulator) -> None:
    link(tmp_path, emulator, "Atzr|revoked")
    async with asyncio.timeout(20):
        results = await run_checks(DoctorContext(write_config(tmp_path, emulator)), NETWORK_CHECKS)
    assert results[1].ok
    assert not results[2].ok and "invalid_grant" in results[2].detail and "avsd login" in results[2].remedy
    assert results[3].skipped


async def test_gpio_and_wake_word(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator, '[button]\npin = 17\n[led]\nkind = "single"\npins = [12]\n')
    ctx = DoctorContext(config, hardware="mock")
    async with asyncio.timeout(20):
        results = await run_checks(ctx, (check_config, check_gpio, check_wake_word))
    assert [r.ok for r in results] == [True, True, True], results
    assert "button GPIO17" in results[1].detail and "LED single" in results[1].detail
    bad = write_config(tmp_path, emulator, '[wake]\nengine = "porcupine"\n')
    async with asyncio.timeout(20):
        results = await run_checks(DoctorContext(bad), (check_config, check_wake_word))
    assert not results[1].ok and "wake.engine" in results[1].remedy


async def test_doctor_exit_code_is_78_for_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[nosuch]\n")
    out = io.StringIO()
    async with asyncio.timeout(30):
        assert await doctor(bad, out, hardware="none") == 78  # the exit-78 contract (issue 8)
    assert "config" in out.getvalue() and "FAIL" in out.getvalue() and "nosuch" in out.getvalue()


async def test_avsd_doctor_passes_on_a_working_device(tmp_path: Path, emulator: Emulator) -> None:
    """The whole command in a subprocess whose ALSA default device is the file plugin: the microphone reads a
    file of noise and the chime is played through PortAudio into a file."""
    pytest.importorskip("pyaudio", reason="PyAudio/PortAudio not installed")
    import numpy as np

    noise = np.random.default_rng(1).integers(-2000, 2000, 16000 * 4, dtype=np.int16).astype("<i2").tobytes()
    (tmp_path / "in.raw").write_bytes(noise)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(textwrap.dedent(f"""
        pcm.!default {{
            type file
            slave.pcm "null"
            file "{tmp_path / "out.raw"}"
            infile "{tmp_path / "in.raw"}"
            format "raw"
        }}
    """))
    link(tmp_path, emulator)
    config = write_config(tmp_path, emulator, '[playback]\nbackend = "pcm"\n[button]\npin = -1\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "doctor", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    async with asyncio.timeout(45):
        out, err = await proc.communicate()
    table = out.decode()
    assert proc.returncode == 0, table + err.decode()[-2000:]
    for name in ("config", "credentials", "token refresh", "AVS endpoint", "microphone", "speaker", "GPIO",
                 "wake word"):
        assert any(line.startswith(name) and " PASS " in line for line in table.splitlines()), table
    assert "dBFS" in table
    assert (tmp_path / "out.raw").stat().st_size > 0  # the chime went out through ALSA
