"""Pure cores: segmentation with plain numbers, every (state, trigger) pair of the call table."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avsd.phone.core import (
    TRANSITIONS,
    CallState,
    CallTrigger,
    Segmenter,
    SegmenterSettings,
    SegmentEvent,
    next_state,
)

F = 0.01  # one 10 ms frame


def run(pattern: list[tuple[bool, float]], settings: SegmenterSettings | None = None) -> list[tuple[float, str]]:
    """Feed (is_speech, seconds) runs; return (time, event) for every event that is not NONE."""
    seg = Segmenter(settings or SegmenterSettings())
    events, t = [], 0.0
    for speech, seconds in pattern:
        for _ in range(round(seconds / F)):
            t += F
            event = seg.process(F, speech)
            if event is not SegmentEvent.NONE:
                events.append((round(t, 2), str(event)))
    return events


def test_silence_after_speech_ends_the_utterance_after_400_ms() -> None:
    assert run([(False, 0.5), (True, 1.0), (False, 1.0)]) == [
        (0.51, "started"), (0.7, "confirmed"), (1.9, "ended"),
    ]


def test_short_noise_is_dropped() -> None:
    assert run([(True, 0.15), (False, 0.5)]) == [(0.01, "started"), (0.55, "dropped")]


def test_pauses_shorter_than_the_silence_do_not_end_it() -> None:
    events = run([(True, 0.3), (False, 0.39), (True, 0.3), (False, 0.4)])
    assert [e for _, e in events] == ["started", "confirmed", "ended"]


def test_cap_cuts_a_long_utterance() -> None:
    events = run([(True, 12.0)], SegmenterSettings(max_s=10.0))
    assert (10.0, "capped") in events
    assert events[-2:] == [(10.01, "started"), (10.2, "confirmed")]  # speech goes on: a new utterance starts


def test_settings_are_honoured() -> None:
    s = SegmenterSettings(silence_s=0.2, min_speech_s=0.05)
    assert run([(True, 0.1), (False, 0.3)], s) == [(0.01, "started"), (0.05, "confirmed"), (0.3, "ended")]


def test_trailing_silence_is_reported() -> None:
    seg = Segmenter(SegmenterSettings())
    for _ in range(50):
        seg.process(F, True)
    event = SegmentEvent.NONE
    while event is SegmentEvent.NONE:
        event = seg.process(F, False)
    assert event is SegmentEvent.ENDED
    assert seg.trailing_silence_s == pytest.approx(0.4)


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(CallState, CallTrigger)))
def test_every_state_trigger_pair(state: CallState, trigger: CallTrigger) -> None:
    result = next_state(state, trigger)
    if trigger is CallTrigger.HANG_UP:
        assert result is CallState.ENDED
    elif state is CallState.ENDED:
        assert result is None
    else:
        assert result == TRANSITIONS.get((state, trigger))


def test_a_reply_only_follows_thinking() -> None:
    assert next_state(CallState.LISTENING, CallTrigger.REPLY) is None
    assert next_state(CallState.THINKING, CallTrigger.REPLY) is CallState.SPEAKING
    assert next_state(CallState.SPEAKING, CallTrigger.BARGE_IN) is CallState.LISTENING
    assert next_state(CallState.THINKING, CallTrigger.UTTERANCE) is None  # one question at a time


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 80)), max_size=40),
       st.sampled_from([0.1, 0.4]), st.sampled_from([0.0, 0.2]), st.sampled_from([1.0, 10.0]))
@settings(max_examples=200, deadline=None)
def test_segmenter_invariants(runs: list[tuple[bool, int]], silence: float, min_speech: float, cap: float) -> None:
    seg = Segmenter(SegmenterSettings(silence_s=silence, min_speech_s=min_speech, max_s=cap))
    open_since: float | None = None
    confirmed = False
    t = 0.0
    for speech, frames in runs:
        for _ in range(frames):
            t += F
            event = seg.process(F, speech)
            if event is SegmentEvent.STARTED or (event is SegmentEvent.CONFIRMED and open_since is None):
                assert open_since is None and speech  # only a voiced frame opens an utterance
                open_since = t - F
            if event is SegmentEvent.CONFIRMED:
                assert not confirmed
                confirmed = True
            if event in (SegmentEvent.ENDED, SegmentEvent.CAPPED):
                assert open_since is not None and confirmed  # what is handed on had enough speech
                assert t - open_since <= cap + 1e-6
                open_since, confirmed = None, False
            if event is SegmentEvent.DROPPED:
                assert open_since is not None and not confirmed
                open_since = None
            assert seg.active == (open_since is not None)
