"""The endpointer is pure: sequences of (seconds, is_speech) in, decisions out."""

from __future__ import annotations

import pytest

from avsd.audio.endpointer import Endpointer, EndpointerSettings, EndpointResult

S = EndpointerSettings(
    speech_start_s=0.3, trailing_silence_s=0.7, no_speech_timeout_s=8.0, max_duration_s=10.0
)


def run(pattern: list[tuple[float, bool]], settings: EndpointerSettings = S, step: float = 0.01):
    """Expand (duration, is_speech) runs into 10 ms frames; return (result, stream time of the result)."""
    ep = Endpointer(settings)
    t = 0.0
    for duration, speech in pattern:
        for _ in range(round(duration / step)):
            t += step
            result = ep.process(step, speech)
            if result is not EndpointResult.CONTINUE:
                return result, round(t, 3), ep
    return EndpointResult.CONTINUE, round(t, 3), ep


@pytest.mark.parametrize(
    ("pattern", "expected", "at"),
    [
        # speech 1 s then silence: ends after 0.7 s of silence
        ([(1.0, False), (1.0, True), (2.0, False)], EndpointResult.END_OF_SPEECH, 2.7),
        # exactly the minimum speech counts
        ([(0.3, True), (1.0, False)], EndpointResult.END_OF_SPEECH, 1.0),
        # too little speech never counts -> no-speech timeout at 8 s
        ([(0.2, True), (9.0, False)], EndpointResult.NO_SPEECH_TIMEOUT, 8.0),
        # silence only
        ([(9.0, False)], EndpointResult.NO_SPEECH_TIMEOUT, 8.0),
        # short drop-outs inside speech do not reset the speech count
        ([(0.15, True), (0.05, False), (0.15, True), (1.0, False)], EndpointResult.END_OF_SPEECH, 1.05),
        # a pause shorter than trailing silence keeps the utterance going
        ([(0.5, True), (0.6, False), (0.5, True), (1.0, False)], EndpointResult.END_OF_SPEECH, 2.3),
        # a one-frame VAD blip inside trailing silence does not restart it
        ([(0.5, True), (0.4, False), (0.01, True), (1.0, False)], EndpointResult.END_OF_SPEECH, 1.2),
        # 30 ms of speech inside trailing silence does restart it
        ([(0.5, True), (0.4, False), (0.03, True), (1.0, False)], EndpointResult.END_OF_SPEECH, 1.63),
        # continuous speech hits the hard cap
        ([(12.0, True)], EndpointResult.MAX_DURATION, 10.0),
        # speech that has not counted yet when the no-speech timeout comes is too late
        ([(7.8, False), (1.0, True), (2.0, False)], EndpointResult.NO_SPEECH_TIMEOUT, 8.0),
        # speech that counted before the timeout carries on past it
        ([(7.5, False), (0.5, True), (1.0, False)], EndpointResult.END_OF_SPEECH, 8.7),
    ],
)
def test_sequences(pattern: list[tuple[float, bool]], expected: EndpointResult, at: float) -> None:
    result, t, _ = run(pattern)
    assert result is expected
    assert t == pytest.approx(at, abs=1e-9)


def test_speech_end_and_start_positions() -> None:
    result, _, ep = run([(1.0, False), (0.8, True), (0.3, False), (0.4, True), (1.0, False)])
    assert result is EndpointResult.END_OF_SPEECH
    assert ep.speech_detected
    assert ep.speech_began_s == pytest.approx(1.0)
    assert ep.speech_end_s == pytest.approx(2.5)


def test_blip_does_not_move_speech_end() -> None:
    _, _, ep = run([(0.5, True), (0.3, False), (0.01, True), (1.0, False)])
    assert ep.speech_end_s == pytest.approx(0.5)


def test_result_is_sticky_and_reset_starts_over() -> None:
    ep = Endpointer(EndpointerSettings(no_speech_timeout_s=0.5))
    for _ in range(50):
        ep.process(0.01, False)
    assert ep.process(0.01, True) is EndpointResult.NO_SPEECH_TIMEOUT
    assert ep.speech_end_s is None
    ep.reset()
    assert ep.process(0.01, True) is EndpointResult.CONTINUE
    assert ep.elapsed_s == pytest.approx(0.01)


def test_large_chunks() -> None:
    ep = Endpointer(S)
    assert ep.process(0.5, True) is EndpointResult.CONTINUE
    assert ep.speech_detected
    assert ep.process(0.7, False) is EndpointResult.END_OF_SPEECH


@pytest.mark.parametrize("kwargs", [{"aggressiveness": 4}, {"trailing_silence_s": -1.0}])
def test_settings_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EndpointerSettings(**kwargs)  # type: ignore[arg-type]


def test_negative_duration_rejected() -> None:
    with pytest.raises(ValueError):
        Endpointer().process(-0.01, True)
