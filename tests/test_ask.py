"""`avsd ask` as a real process against the local AVS server it starts (--backend emulator)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from avsd.cli import main
from tests.harness import FIXTURES
from tests.library_helpers import mp3_seconds

WAV = FIXTURES / "alexa-what-time-is-it.wav"


def avsd_ask(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avsd", "ask", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
    )


def test_files_and_text_replies_saved_as_mp3_and_wav_with_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "replies"
    proc = avsd_ask(WAV, "--say", "what time is it", "--out", out, "--json", "--backend", "emulator")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["input"] for line in lines] == [str(WAV), "what time is it"]
    for line in lines:
        assert line["ok"] and line["directives"] == ["SpeechSynthesizer.Speak"] and line["status"] == 200
        mp3 = Path(line["mp3"]).read_bytes()
        with wave.open(line["wav"], "rb") as wav:
            wav_s = wav.getnframes() / wav.getframerate()
        assert abs(wav_s - mp3_seconds(mp3)) < 0.1  # the WAV is the MP3, decoded
    assert sorted(p.name for p in out.iterdir()) == [
        "01-alexa-what-time-is-it.mp3", "01-alexa-what-time-is-it.wav",
        "02-what-time-is-it.mp3", "02-what-time-is-it.wav",
    ]


def test_twelve_inputs_ten_at_a_time_one_text_line_each(tmp_path: Path) -> None:
    proc = avsd_ask(*([WAV] * 12), "--out", tmp_path, "--concurrency", "10", "--backend", "emulator")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 12
    assert all(line.startswith(f"{WAV}: SpeechSynthesizer.Speak -> ") for line in lines)
    assert len(list(tmp_path.glob("*.mp3"))) == 12


def test_an_input_without_an_answer_makes_exit_1(tmp_path: Path) -> None:
    scenario = tmp_path / "fail-first.toml"
    scenario.write_text('[[rule]]\nmatch = "SpeechRecognizer.Recognize"\ntimes = 1\nstatus = 500\n')
    proc = avsd_ask(WAV, "--say", "hello", "--out", tmp_path, "--concurrency", "1",
                    "--backend", "emulator", "--scenario", scenario)
    assert proc.returncode == 1
    first, second = proc.stdout.splitlines()
    assert first.startswith(f"{WAV}: FAILED AVS answered 500 INTERNAL_SERVICE_EXCEPTION")
    assert second.startswith("hello: SpeechSynthesizer.Speak")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to ask"),
        ((WAV, "--concurrency", "11"), "--concurrency must be 1-10"),
        ((WAV, "--scenario", WAV), "--scenario needs --backend emulator"),
        (("/nonexistent.wav", "--backend", "emulator"), "no such file"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str | Path, ...], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", *map(str, args)]) == 2
    assert message in capsys.readouterr().err


def test_bad_config_and_missing_credentials_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[avs]\nendpont = 'EU'\n")
    assert main(["ask", str(WAV), "--backend", "avs", "--config", str(bad)]) == 78
    err = capsys.readouterr().err
    assert "avs.endpont" in err and len(err.splitlines()) == 1
    empty = tmp_path / "nocreds.toml"
    empty.write_text(f"[daemon]\nstate_dir = '{tmp_path / 'state'}'\n")
    assert main(["ask", str(WAV), "--backend", "avs", "--config", str(empty)]) == 78
    assert "avsd login" in capsys.readouterr().err


def test_backend_avs_uses_the_device_config_and_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import threading

    from avsd.avs.credentials import Credentials, save_credentials
    from avsd.emulator.server import Emulator

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emu = Emulator()
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result(10)
    try:
        save_credentials(tmp_path / "state" / "credentials.json", Credentials("avsd-test", emu.refresh_token))
        config = tmp_path / "avsd.toml"
        config.write_text(f"[daemon]\nstate_dir = '{tmp_path / 'state'}'\n"
                          f"[avs]\nendpoint = '{emu.base_url}'\nca_file = '{emu.ca_file}'\n")
        assert main(["ask", str(WAV), "--config", str(config), "--out", str(tmp_path / "out")]) == 0
        assert capsys.readouterr().out.startswith(f"{WAV}: SpeechSynthesizer.Speak -> ")
        assert [r.qualified_name for r in emu.records if r.qualified_name] == [
            "System.SynchronizeState", "SpeechRecognizer.Recognize"
        ]
    finally:
        asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
