"""What the user sees of the wake stage: `avsd demo`'s detection line and `avsd doctor --wake FILE.wav`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from avsd.cli import main
from avsd.root import select_engine
from avsd.wake.base import Detection, WakeSettings
from avsd.wake.report import ObservedEngine, describe, scan
from tests.fixtures import hardset, speechgen
from tests.wake.helpers import FIXTURES, feed, wav_bytes

ROOT = Path(__file__).resolve().parents[2]
REAL_ALEXA = FIXTURES / "real" / "oww-alexa-test.wav"


def test_doctor_wake_as_in_the_readme(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["doctor", "--wake", "tests/fixtures/real/oww-alexa-test.wav"]) == 0
    out = capsys.readouterr().out
    micro = re.search(r"micro: best score (\d\.\d+) at (\d+\.\d+) s \(above its threshold 0\.70\)", out)
    oww = re.search(r"openwakeword: best score (\d\.\d+) at (\d+\.\d+) s \(above its threshold 0\.90\)", out)
    assert micro and oww, out
    assert float(micro[1]) > 0.9 and float(oww[1]) > 0.9
    assert 0.3 <= float(oww[2]) <= 1.5  # seconds into the file (the padding is not counted)
    assert re.search(r"cascade: wake word by (micro|openwakeword) \(score 0\.\d\d\): word from 0\.\d\d s", out)


def test_doctor_wake_says_when_it_would_not_wake(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--wake", str(FIXTURES / "no-wake-word.wav")]) == 1
    out = capsys.readouterr().out
    assert "cascade: would not wake on this recording" in out
    assert re.search(r"openwakeword: best score 0\.\d+ at .*below its threshold 0\.90", out)


def test_doctor_wake_uses_the_configured_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "avsd.toml"
    config.write_text("[wake]\nmicro_threshold = 1.0\nopenwakeword_threshold = 1.0\n"
                      "micro_agree_threshold = 1.0\nopenwakeword_agree_threshold = 1.0\n")
    assert main(["doctor", "--config", str(config), "--wake", str(REAL_ALEXA)]) == 1
    out = capsys.readouterr().out
    assert "below its threshold 1.00" in out and "would not wake" in out


def test_doctor_wake_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not.wav"
    bad.write_bytes(b"RIFF....nonsense")
    assert main(["doctor", "--wake", str(bad)]) == 2
    assert "cannot read WAV file" in capsys.readouterr().out


def test_scan_shows_each_model_even_where_the_gate_would_not_open() -> None:
    """A quiet "Alexa" after speech-free noise: the scan runs openWakeWord ungated, so it always has a score."""
    pcm = speechgen.read_wav(hardset.real_path(hardset.PORCUPINE))
    result = scan(WakeSettings(), pcm.tobytes())
    by_model = {m.model: m for m in result.models}
    assert set(by_model) == {"micro", "openwakeword"}
    for model in by_model.values():
        assert 7.9 <= model.best_at_s <= 9.3 and model.best_score > model.threshold
    assert len(result.detections) == 1
    assert abs(result.detections[0].start_index / 16000 - 7.6) <= 0.15


def test_observed_engine_reports_and_isolates_its_observer() -> None:
    seen: list[Detection] = []

    def observer(detection: Detection) -> None:
        seen.append(detection)
        raise RuntimeError("a broken observer must not take the wake word down")

    engine = ObservedEngine(select_engine(WakeSettings(engine="micro")), observer)
    found = feed(engine, wav_bytes("alexa.wav"))
    assert len(found) == 1 and seen == found
    assert re.fullmatch(r"wake word by micro \(score 0\.\d\d\): word from 1\.0\d s, heard at 1\.\d\d s",
                        describe(found[0]))


def test_demo_prints_which_engine_fired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--fast", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "wake word engine cascade" in out
    # the shipped WAV has "Alexa" from exactly 1.00 s (tests/fixtures/speech.json)
    line = (r"wake word by (micro|openwakeword|micro\+openwakeword) \(score 0\.\d\d\): "
            r"word from 1\.0[0-2] s, heard at 1\.\d\d s")
    assert re.search(line, out), out
