"""The pure LED pattern table and animation sampler."""

from __future__ import annotations

import pytest

from avsd.hw.patterns import (
    PATTERNS,
    Effect,
    LedInputs,
    LedPattern,
    Pattern,
    frame_at,
    pattern_for,
    pattern_name_for,
)
from avsd.state import DialogState as S

P = LedPattern

# (state, connected, alert ringing, notification waiting) -> pattern. One row per priority decision.
PRIORITY_ROWS = [
    (S.IDLE, True, False, False, P.IDLE),
    (S.IDLE, True, False, True, P.NOTIFICATION),
    (S.IDLE, False, False, False, P.OFFLINE),
    (S.IDLE, False, False, True, P.OFFLINE),  # offline beats a stale notification
    (S.OFFLINE, True, False, False, P.OFFLINE),
    (S.OFFLINE, False, True, False, P.ALERT),  # alarms ring offline, and the LEDs say so
    (S.LISTENING, True, False, False, P.LISTENING),
    (S.LISTENING, True, False, True, P.LISTENING),  # dialog beats notification
    (S.THINKING, True, False, False, P.THINKING),
    (S.SPEAKING, True, False, False, P.SPEAKING),
    (S.EXPECTING, True, False, False, P.EXPECTING),
    (S.SPEAKING, False, False, False, P.SPEAKING),  # dialog states beat the connection flag
    (S.MUTED, True, False, False, P.MUTED),
    (S.MUTED, False, False, True, P.MUTED),  # muted beats offline and notification
    (S.MUTED, True, True, False, P.ALERT),  # alert beats muted
    (S.SPEAKING, True, True, True, P.ALERT),  # alert beats everything
]


@pytest.mark.parametrize(("state", "connected", "ringing", "notified", "expected"), PRIORITY_ROWS)
def test_priority_table(
    state: S, connected: bool, ringing: bool, notified: bool, expected: LedPattern
) -> None:
    inputs = LedInputs(state, connected, alert_ringing=ringing, notification_waiting=notified)
    assert pattern_name_for(inputs) is expected
    assert pattern_for(inputs) is PATTERNS[expected]


@pytest.mark.parametrize("state", list(S))
def test_every_dialog_state_has_a_pattern(state: S) -> None:
    assert pattern_for(LedInputs(state, connected=True)).name in PATTERNS


def test_attention_colours() -> None:
    assert PATTERNS[P.LISTENING].color == (0, 0, 255)
    assert PATTERNS[P.MUTED].color == (255, 0, 0)
    assert PATTERNS[P.MUTED].effect is Effect.SOLID
    r, g, b = PATTERNS[P.NOTIFICATION].color
    assert r > 200 and g > 100 and b == 0  # yellow
    assert PATTERNS[P.IDLE].effect is Effect.OFF


def test_each_pattern_looks_different() -> None:
    looks = {(p.color, p.effect, p.period_s) for p in PATTERNS.values()}
    assert len(looks) == len(PATTERNS)


RED = Pattern(P.MUTED, (255, 0, 0), Effect.SOLID)
BLINK = Pattern(P.ALERT, (255, 255, 255), Effect.BLINK, 1.0)
PULSE = Pattern(P.SPEAKING, (0, 200, 100), Effect.PULSE, 2.0)
SPIN = Pattern(P.THINKING, (0, 0, 200), Effect.SPIN, 1.2)
OFF = Pattern(P.IDLE, (0, 0, 0), Effect.OFF)


@pytest.mark.parametrize(
    ("pattern", "t", "n", "expected"),
    [
        (OFF, 3.3, 2, [(0, 0, 0)] * 2),
        (RED, 0.0, 3, [(255, 0, 0)] * 3),
        (RED, 99.0, 1, [(255, 0, 0)]),
        (BLINK, 0.0, 2, [(255, 255, 255)] * 2),
        (BLINK, 0.49, 1, [(255, 255, 255)]),
        (BLINK, 0.5, 1, [(0, 0, 0)]),
        (BLINK, 1.25, 1, [(255, 255, 255)]),  # periodic
        (BLINK, -0.25, 1, [(0, 0, 0)]),  # negative times wrap too
        (PULSE, 0.0, 1, [(0, 30, 15)]),  # the dimmest point: 15 %, never dark
        (PULSE, 1.0, 2, [(0, 200, 100)] * 2),  # peak at half the period
        (PULSE, 2.0, 1, [(0, 30, 15)]),
        # spin on 12 pixels: head at index floor(phase*12), tail behind it
        (SPIN, 0.0, 12, [(0, 0, 200)] + [(0, 0, 0)] * 9 + [(0, 0, 20), (0, 0, 70)]),
        (
            SPIN,
            0.5,
            12,
            [(0, 0, 0)] * 3 + [(0, 0, 20), (0, 0, 70), (0, 0, 200)] + [(0, 0, 0)] * 6,
        ),  # phase 5/12
        # spin on 3 pixels (ReSpeaker 2-mic): head, tail, tail
        (SPIN, 0.5, 3, [(0, 0, 70), (0, 0, 200), (0, 0, 20)]),
        # spin on 2 pixels keeps only as much tail as fits
        (SPIN, 0.0, 2, [(0, 0, 200), (0, 0, 70)]),
    ],
)
def test_frame_at(pattern: Pattern, t: float, n: int, expected: list[tuple[int, int, int]]) -> None:
    assert frame_at(pattern, t, n) == expected


def test_spin_on_one_pixel_pulses() -> None:
    levels = {frame_at(SPIN, t / 10, 1)[0] for t in range(12)}
    assert len(levels) > 3  # it changes over a period: busy, not solid
    assert frame_at(SPIN, 0.6, 1) == [(0, 0, 200)]


def test_pulse_never_goes_dark() -> None:
    samples = [frame_at(PULSE, t / 100, 1)[0][1] for t in range(400)]
    assert min(samples) == 30  # 15 % of 200
    assert max(samples) == 200


@pytest.mark.parametrize("n", [0, -1])
def test_frame_at_rejects_no_pixels(n: int) -> None:
    with pytest.raises(ValueError):
        frame_at(RED, 0.0, n)


@pytest.mark.parametrize(
    ("color", "effect", "period"),
    [((256, 0, 0), Effect.SOLID, 0.0), ((0, -1, 0), Effect.SOLID, 0.0), ((1, 1, 1), Effect.PULSE, 0.0)],
)
def test_pattern_validation(color: tuple[int, int, int], effect: Effect, period: float) -> None:
    with pytest.raises(ValueError):
        Pattern(P.IDLE, color, effect, period)
