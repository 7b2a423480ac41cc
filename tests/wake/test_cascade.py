"""The default cascade wake stage: real people, a sample of the hard synthetic set, and the speech gate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from avsd.audio.frames import SAMPLE_RATE
from avsd.root import select_engine
from avsd.wake.base import EngineName, WakeSettings
from avsd.wake.cascade import PREROLL_S, WARMUP_S, GatedScorer, SpeechGate
from avsd.wake.scored import ScoredEngine, Scorer
from tests.fixtures import hardset, speechgen
from tests.wake.helpers import feed, needs_tools

BLOCK = 3200  # 100 ms blocks, as the daemon feeds the engine while idle
ENGINES = ("cascade", "micro", "openwakeword")


def feed_blocks(engine: ScoredEngine, pcm: np.ndarray, first_index: int = 0) -> list:  # type: ignore[type-arg]
    data = pcm.astype("<i2").tobytes()
    found = []
    for offset in range(0, len(data) - BLOCK + 1, BLOCK):
        det = engine.process(data[offset : offset + BLOCK], first_index + (offset + BLOCK) // 2)
        if det is not None:
            found.append(det)
    return found


def make(engine: str = "cascade", **kwargs: object) -> ScoredEngine:
    built = select_engine(WakeSettings(engine=engine, **kwargs))  # type: ignore[arg-type]
    assert isinstance(built, ScoredEngine)
    return built


def room_noise(seconds: float, seed: int = 3, level: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).integers(-level, level, round(seconds * SAMPLE_RATE)).astype(np.int16)


def test_cascade_is_the_default_with_both_models() -> None:
    assert WakeSettings().engine == EngineName.CASCADE
    engine = make()
    assert engine.name == "cascade"
    assert [m.scorer.name for m in engine.models] == ["micro", "openwakeword"]
    assert isinstance(engine.models[1].scorer, GatedScorer)
    # in the cascade: tuned on bench_wake (README); alone: each model's own default
    assert [m.thresholds.normal for m in engine.models] == [0.7, 0.9]
    assert [m.thresholds.agree for m in engine.models] == [0.3, 0.1]
    assert make("micro").threshold == 0.9 and make("openwakeword").threshold == 0.5


def test_per_model_thresholds_are_config_keys() -> None:
    engine = make(micro_threshold=0.8, openwakeword_threshold=0.3, openwakeword_playback_threshold=0.95,
                  threshold=0.1)
    micro, oww = engine.models
    assert (micro.thresholds.normal, oww.thresholds.normal, oww.thresholds.playback) == (0.8, 0.3, 0.95)
    # the generic key is for a single engine; the per-model key wins there too
    assert make("openwakeword", threshold=0.4).threshold == 0.4
    assert make("openwakeword", threshold=0.4, openwakeword_threshold=0.6).threshold == 0.6


@pytest.mark.parametrize(
    ("key", "value"), [("micro_threshold", 1.5), ("openwakeword_playback_threshold", -0.1), ("gate_db", 0.5)]
)
def test_bad_wake_key_names_the_key(key: str, value: float) -> None:
    from avsd.config import parse_config
    from avsd.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"wake\.{key}"):
        parse_config({"wake": {key: value}})


# -- real people -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    return hardset.real_clips()


@pytest.mark.parametrize("name", ENGINES)
def test_real_alexa_wakes_every_engine(real: dict[str, np.ndarray], name: str) -> None:
    engine = make(name)
    for clip_name, clip in real.items():
        engine.reset()
        found = feed_blocks(engine, clip)
        assert len(found) == 1, (clip_name, found)
        assert found[0].end_index >= SAMPLE_RATE  # after the 1 s of padding, i.e. on the word


@pytest.mark.parametrize("name", ENGINES)
def test_real_speaker_wakes_once_on_alexa_and_never_on_the_rest(name: str) -> None:
    """45 s of one real person saying other keywords; "Alexa" is at 7.6-8.3 s and must be the only wake."""
    pcm = speechgen.read_wav(hardset.real_path(hardset.PORCUPINE))
    engine = make(name)  # the default refractory period hides only 8.4-10.4 s: the rest must stay quiet
    found = feed_blocks(engine, pcm)
    assert len(found) == 1, found
    det = found[0]
    assert 8.0 * SAMPLE_RATE <= det.end_index <= 9.3 * SAMPLE_RATE
    assert abs(det.start_index - 7.6 * SAMPLE_RATE) <= 0.15 * SAMPLE_RATE  # the word's onset, within 150 ms


def test_cascade_either_model_wakes_but_once(real: dict[str, np.ndarray]) -> None:
    """Both models score the real word above their thresholds; one refractory period makes that one wake."""
    engine = make()
    found = feed_blocks(engine, np.concatenate([real["oww-alexa-test"], speechgen.silence(1.0)]))
    micro, oww = engine.models
    assert micro.max_score > micro.thresholds.normal and oww.max_score > oww.thresholds.normal
    assert len(found) == 1


def test_openwakeword_alone_catches_what_micro_is_told_to_miss(real: dict[str, np.ndarray]) -> None:
    engine = make(micro_threshold=1.0, micro_agree_threshold=1.0)  # micro can never take part: openWakeWord must
    found = feed_blocks(engine, np.concatenate([room_noise(4.0), real["porcupine-alexa"]]))
    assert [d.engine for d in found] == ["openwakeword"]


@pytest.mark.skipif(not hardset.POCKETSPHINX_DIR.exists(), reason="apt-get install pocketsphinx-testdata")
def test_real_non_wake_speech_does_not_wake() -> None:
    speech = [pcm for _, pcm in hardset.real_non_wake()]
    stream = np.concatenate([np.concatenate([speechgen.silence(0.5), p]) for p in speech])
    assert len(stream) > 60 * SAMPLE_RATE
    engine = make()
    assert feed_blocks(engine, stream) == []
    gated = engine.models[1].scorer
    assert isinstance(gated, GatedScorer) and gated.fed_samples > 30 * SAMPLE_RATE  # it really listened


# -- the hard synthetic set (a sample; bench/bench_wake.py runs all 210) -----------------------------------


@needs_tools
def test_hard_set_sample(tmp_path_factory: pytest.TempPathFactory) -> None:
    sample = hardset.hard_set(tmp_path_factory.mktemp("hard"), step=10)
    assert len(sample) == 21
    hits: dict[str, int] = {}
    start_errors = []
    for name in ENGINES:
        engine = make(name)
        hits[name] = 0
        for positive in sample:
            engine.reset()
            found = feed_blocks(engine, speechgen.read_wav(positive.path))
            hits[name] += bool(found)
            if found and name == "cascade":
                start_errors.append(abs(found[0].start_index - positive.alexa_start) / SAMPLE_RATE)
        engine.close()
    # Measured on this sample: micro 11, openWakeWord 6, cascade 12 of 21 (see the README for the full set).
    assert hits["cascade"] >= max(hits["micro"], hits["openwakeword"])
    assert hits["cascade"] >= 11, hits
    assert float(np.median(start_errors)) <= 0.02


# -- the gate ----------------------------------------------------------------------------------------------


class Spy(Scorer):
    """Records what a gated model is given (and when), instead of scoring it."""

    name = "openwakeword"

    def __init__(self) -> None:
        self.calls: list[tuple[int, bytes]] = []  # (end_index of the block that caused the call, audio)

    def score(self, frame: bytes, levels: Sequence[float], end_index: int) -> float | None:
        self.calls.append((end_index, frame))
        return 0.0

    def reset(self) -> None:
        self.calls.clear()

    def close(self) -> None:
        pass


def spy_engine() -> tuple[ScoredEngine, GatedScorer, Spy]:
    spy = Spy()
    gated = GatedScorer(spy, SpeechGate(WakeSettings().gate_db))
    engine = ScoredEngine(WakeSettings(), [gated], name="gated")
    return engine, gated, spy


def test_gate_keeps_openwakeword_asleep_in_a_quiet_room() -> None:
    engine, gated, _ = spy_engine()
    feed_blocks(engine, room_noise(WARMUP_S))  # warm-up: the model fills its windows with room audio
    warm = gated.fed_samples
    assert warm == round(WARMUP_S * SAMPLE_RATE)
    feed_blocks(engine, room_noise(60.0, seed=4), first_index=round(WARMUP_S * SAMPLE_RATE))
    assert gated.fed_samples == warm and gated.gate.opened == 0


def test_gate_feeds_the_onset_from_before_it_opened() -> None:
    engine, gated, spy = spy_engine()
    word = hardset.real_clips()["porcupine-alexa"][SAMPLE_RATE:]  # the real clip, without the digital padding
    lead = room_noise(5.0)
    pcm = np.concatenate([lead, word, room_noise(3.0, seed=5)]).astype("<i2")
    feed_blocks(engine, pcm)
    assert gated.gate.opened >= 1
    # the first call after the warm-up is the opening: it carries the pre-roll, then every block follows
    opening = next(i for i, (end, _) in enumerate(spy.calls) if end > WARMUP_S * SAMPLE_RATE)
    end, audio = spy.calls[opening]
    first = end - len(audio) // 2
    onset = len(lead) + round(0.3 * SAMPLE_RATE)  # the clip starts 0.3 s before the word (7.3 s vs 7.6 s)
    assert end > len(lead)  # it opened on the speech...
    assert first <= onset - 0.5 * SAMPLE_RATE and end - first <= PREROLL_S * SAMPLE_RATE + BLOCK // 2
    # ...and everything the model got is the recording itself at its own position: nothing altered or
    # repeated, and contiguous from the opening through the word and the hold time (at least 1.5 s)
    raw = pcm.tobytes()
    previous_end = 0
    contiguous_until = end
    for call_end, chunk in spy.calls[opening:]:
        call_start = call_end - len(chunk) // 2
        assert chunk == raw[call_start * 2 : call_end * 2]
        assert call_start >= previous_end
        if call_start == contiguous_until:
            contiguous_until = call_end
        previous_end = call_end
    assert contiguous_until - first >= 1.5 * SAMPLE_RATE


def test_gate_closes_after_the_speech_and_reopens_without_repeating() -> None:
    gate = SpeechGate(6.0, hold_s=0.5)
    quiet, loud = [30.0] * 10, [60.0] * 10
    assert not gate.update(quiet)
    assert gate.update(loud) and gate.is_open
    assert gate.update(quiet) and gate.update(quiet) and gate.update(quiet) and gate.update(quiet)
    assert gate.update(quiet)  # the block in which it closes still goes to the model
    assert not gate.is_open and not gate.update(quiet)
    assert gate.update(loud) and gate.opened == 2


def test_gate_is_not_fooled_by_digital_silence() -> None:
    """A stream that starts with zeros, then a quiet room: the zeros must not become the floor."""
    gate = SpeechGate(6.0)
    assert not gate.update([0.0] * 100)  # 1 s of exact zeros
    gate.update([35.0] * 10)
    assert all(not gate.update([35.0 + (i % 3)] * 10) for i in range(50))  # 5 s of room noise: closed
    assert gate.opened == 0
    assert gate.update([60.0] * 10)  # and speech still opens it


def test_real_cascade_in_silence_runs_only_micro() -> None:
    engine = make()
    gated = engine.models[1].scorer
    assert isinstance(gated, GatedScorer)
    feed_blocks(engine, room_noise(30.0))
    assert gated.fed_samples == round(WARMUP_S * SAMPLE_RATE)  # the warm-up only
    assert engine.models[0].max_score < 0.5


# -- while the device speaks -------------------------------------------------------------------------------


def test_boosted_cascade_blocks_echo_for_both_models() -> None:
    """The device's own reply "... Alexa ..." as an echo: unboosted it wakes; boosted, neither model may."""
    if not speechgen.have_tools():
        pytest.skip("espeak-ng and sox are needed to synthesise speech")
    parts = [speechgen.synth("Okay.", "en-gb"), speechgen.silence(0.2), speechgen.synth("Alexa", "en-gb"),
             speechgen.silence(0.15), speechgen.synth("can set timers for you.", "en-gb")]
    reply = np.concatenate(parts)
    echo = speechgen.sox_effect(reply, ["gain", "-12", "highpass", "250", "lowpass", "4000", "reverb", "50"])
    echo = np.concatenate([room_noise(3.0), echo, room_noise(1.0)])
    assert len(feed(make(), echo)) == 1
    boosted = make()
    boosted.set_sensitivity_boost(True)
    assert feed(boosted, echo) == []
    gated = boosted.models[1].scorer
    assert isinstance(gated, GatedScorer) and gated.gate.opened >= 1  # openWakeWord did hear the echo
