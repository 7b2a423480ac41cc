"""The shipped scenarios run with ``avsd demo --scenario config/scenarios/<name>.toml`` and do what they say."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from avsd.audio.frames import SAMPLE_RATE
from avsd.cli import main
from tests.harness import fixture_pcm, room_noise

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "config" / "scenarios"


def run_demo(tmp_path: Path, scenario: str, *extra: str) -> tuple[str, list[dict[str, object]]]:
    events = tmp_path / "events.jsonl"
    argv = ["demo", "--scenario", str(SCENARIOS / scenario), "--out", str(tmp_path / "out"),
            "--events-json", str(events), *extra]
    assert main(argv) == 0
    return events.name, [json.loads(line) for line in events.read_text().splitlines()]


def names(records: list[dict[str, object]], direction: str) -> list[str]:
    return [f"{r['namespace']}.{r['name']}" for r in records if r["direction"] == direction]


def test_timer_scenario_rings_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, records = run_demo(tmp_path, "timer.toml", "--fast")
    out = capsys.readouterr().out
    assert "alert demo-timer-1 sounding" in out
    assert "alert events AVS received: Alerts.SetAlertSucceeded, Alerts.AlertStarted, Alerts.AlertStopped" in out
    assert "Alerts.SetAlert" in names(records, "directive")
    assert sorted((tmp_path / "out").glob("alert-*.wav"))


def test_alarm_offline_scenario_rings_offline_and_delivers_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_demo(tmp_path, "alarm-offline.toml")  # real time: the scenario's outage is timed against the utterance
    out = capsys.readouterr().out
    lines = out.splitlines()
    sounding = next(i for i, line in enumerate(lines) if "alert demo-alarm-1 sounding" in line)
    # Offline when it rang: the last connection line before it is not "connected".
    before = [line for line in lines[:sounding] if " connection " in line]
    assert before and not before[-1].rstrip().endswith("connection connected"), before
    assert "alert events AVS received: Alerts.SetAlertSucceeded, Alerts.AlertStarted, Alerts.AlertStopped" in out


def test_multi_turn_scenario_answered_follow_up_carries_the_initiator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_turns = tmp_path / "two-turns.wav"
    pcm = room_noise(0.5) + fixture_pcm("alexa-what-time-is-it") + room_noise(1.0, seed=8)
    pcm += fixture_pcm("no-wake-word") + room_noise(1.0, seed=9)
    with wave.open(str(two_turns), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    _, records = run_demo(tmp_path, "multi-turn.toml", "--input", str(two_turns))
    out = capsys.readouterr().out
    recognizes = [r for r in records if r["direction"] == "event" and r["name"] == "Recognize"]
    assert len(recognizes) == 2, out
    follow_up = recognizes[1]["payload"]
    assert isinstance(follow_up, dict)
    assert follow_up["initiator"] == {"type": "EXPECT_SPEECH", "payload": {"token": "demo-expect-1"}}
    assert "expecting -> listening" in out
    directives = names(records, "directive")
    assert directives.count("SpeechRecognizer.ExpectSpeech") == 1 and "Alerts.SetAlert" in directives
    assert "alert demo-timer-2 sounding" in out
    assert "SpeechRecognizer.ExpectSpeechTimedOut" not in names(records, "event")
