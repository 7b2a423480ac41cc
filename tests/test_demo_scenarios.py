"""Every shipped scenario runs with the one command the README gives for it, and does what it says.

The commands are read from the README's scenario table and run as written (``avsd`` -> ``avsd.cli.main``) in a
scratch directory where ``config`` is the repository's, so the ``--events-json`` files land there. Real time:
the demo speaks (espeak-ng) and plays the replies at wall-clock pace, as a device does.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avsd.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_avsd_logger() -> Iterator[None]:
    """``main()`` configures the "avsd" logger (level, handler, no propagation): put it back for later tests."""
    logger = logging.getLogger("avsd")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:], logger.propagate = saved[1], saved[2]
SCENARIOS = ROOT / "config" / "scenarios"

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="--say needs espeak-ng (scripts/apt-packages.txt)"),
]


def readme_commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"\| `([a-z-]+)` \| `(avsd demo --scenario config/scenarios/[^`]+)` \|", text)
    return dict(found)


COMMANDS = readme_commands()


def test_every_shipped_scenario_has_a_readme_command() -> None:
    shipped = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    assert sorted(COMMANDS) == shipped
    for name, command in COMMANDS.items():
        assert f"config/scenarios/{name}.toml" in command
        # The scenario file's own "Run:" comment gives the same command.
        assert f"# Run: {command}" in (SCENARIOS / f"{name}.toml").read_text()


def run_readme_command(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    (tmp_path / "config").symlink_to(ROOT / "config")
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(COMMANDS[name])
    assert argv[0] == "avsd"
    assert main([*argv[1:3], *argv[3:]]) == 0
    events_file = tmp_path / f"{name}.jsonl"
    return [json.loads(line) for line in events_file.read_text().splitlines()]


def names(records: list[dict[str, Any]], direction: str) -> list[str]:
    return [f"{r['namespace']}.{r['name']}" for r in records if r["direction"] == direction]


def first(records: list[dict[str, Any]], qualified: str) -> dict[str, Any]:
    return next(r for r in records if f"{r['namespace']}.{r['name']}" == qualified)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def test_basic_reply_plays_in_real_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = run_readme_command("basic", tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "saying 'Alexa, hello'" in out
    assert "Speaker.SetVolume" in names(records, "directive")
    # The scenario's display card: printed by the demo and kept in the event log.
    assert 'card BodyTemplate1 "avsd emulator" / basic scenario: Hello from the avsd emulator' in out
    assert first(records, "TemplateRuntime.RenderTemplate")["payload"]["token"] == "basic-card-1"
    started = first(records, "SpeechSynthesizer.SpeechStarted")["time"]
    finished = first(records, "SpeechSynthesizer.SpeechFinished")["time"]
    reply = Path(out.split("Alexa's reply: ")[1].splitlines()[0].split(",")[0].strip())
    length = wav_seconds(reply)
    assert length > 1.5
    # A device's timeline: the reply takes as long as its audio (not ~6 ms as when written faster than real time).
    assert abs((finished - started) - length) < 0.4, (finished - started, length)


def test_timer_rings_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = run_readme_command("timer", tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "alert demo-timer-1 sounding" in out
    assert "alert events AVS received: Alerts.SetAlertSucceeded, Alerts.AlertStarted, Alerts.AlertStopped" in out
    assert "Alerts.SetAlert" in names(records, "directive")
    started = first(records, "Alerts.AlertStarted")["time"]
    stopped = first(records, "Alerts.AlertStopped")["time"]
    assert 1.5 < stopped - started < 3.5  # the demo "presses stop" 2 s after it starts sounding


def test_alarm_offline_rings_offline_and_delivers_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_readme_command("alarm-offline", tmp_path, monkeypatch)
    out = capsys.readouterr().out
    lines = out.splitlines()
    sounding = next(i for i, line in enumerate(lines) if "alert demo-alarm-1 sounding" in line)
    before = [line for line in lines[:sounding] if " connection " in line]
    assert before and not before[-1].rstrip().endswith("connection connected"), before
    assert "alert events AVS received: Alerts.SetAlertSucceeded, Alerts.AlertStarted, Alerts.AlertStopped" in out


def test_music_playlist_falls_back_and_plays(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = run_readme_command("music-playlist", tmp_path, monkeypatch)
    play = first(records, "AudioPlayer.Play")
    url = play["payload"]["audioItem"]["stream"]["url"]
    assert url.startswith("https://127.0.0.1:") and "/media/radio.pls?sig=" in url
    events = names(records, "event")
    assert "AudioPlayer.PlaybackFailed" not in events
    assert "AudioPlayer.PlaybackStarted" in events and "AudioPlayer.PlaybackFinished" in events
    finished = first(records, "AudioPlayer.PlaybackFinished")
    assert 7500 <= finished["payload"]["offsetInMilliseconds"] <= 8500  # the 8 s tone, played to its end
    played = finished["time"] - first(records, "AudioPlayer.PlaybackStarted")["time"]
    assert 7.0 < played < 10.0  # in real time
    # The device's log (stderr at the demo's warning level): the dead mirror answered 404, the next entry played.
    captured = capsys.readouterr()
    assert 'card PlayerInfo "The avsd radio" / A440 for eight seconds: avsd emulator' in captured.out
    fell_back = [line for line in captured.err.splitlines() if "candidate 1/2 failed" in line]
    assert fell_back and "404" in fell_back[0] and "missing.mp3" in fell_back[0]


def test_multi_turn_second_recognize_carries_the_initiator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = run_readme_command("multi-turn", tmp_path, monkeypatch)
    out = capsys.readouterr().out
    recognizes = [r for r in records if r["direction"] == "event" and r["name"] == "Recognize"]
    assert len(recognizes) == 2, out
    assert recognizes[1]["payload"]["initiator"] == {"type": "EXPECT_SPEECH", "payload": {"token": "demo-expect-1"}}
    assert "saying 'three seconds'" in out  # the answer is spoken without the wake word
    assert "expecting -> listening" in out
    directives = names(records, "directive")
    assert directives.count("SpeechRecognizer.ExpectSpeech") == 1 and "Alerts.SetAlert" in directives
    assert "alert demo-timer-2 sounding" in out
    assert "SpeechRecognizer.ExpectSpeechTimedOut" not in names(records, "event")


def test_flaky_retries_and_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = run_readme_command("flaky", tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert names(records, "event").count("System.SynchronizeState") >= 2  # the first was answered 503
    assert out.count("connection connected") >= 2  # reconnected after the GOAWAY
    assert "sent 1 Recognize" in out


def test_fast_keeps_the_old_timeline_and_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`avsd demo --fast`: the shipped WAV as fast as it goes and replies as fast as they decode."""
    events = tmp_path / "fast.jsonl"
    assert main(["demo", "--fast", "--out", str(tmp_path / "out"), "--events-json", str(events)]) == 0
    records = [json.loads(line) for line in events.read_text().splitlines()]
    took = first(records, "SpeechSynthesizer.SpeechFinished")["time"] - first(
        records, "SpeechSynthesizer.SpeechStarted"
    )["time"]
    assert took < 1.0  # a ~3.5 s reply written faster than real time
    capsys.readouterr()
    assert main(["demo", "--say", "hello", "--input", str(tmp_path / "x.wav")]) == 2
    assert "not both" in capsys.readouterr().err
