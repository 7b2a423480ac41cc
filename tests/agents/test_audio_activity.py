"""AudioPlayer's activity (§6.3 PlaybackState.playerActivity) as one table: every (activity, trigger) pair, written
out by hand, not derived from the table."""

from __future__ import annotations

import itertools

import pytest

from avsd.agents.audio_queue import ACTIVITY_TABLE, ActivityTrigger, PlayerActivity, item_started, next_activity

A, T = PlayerActivity, ActivityTrigger
COLUMNS = (T.STARTED, T.PAUSED, T.RESUMED, T.FINISHED, T.STOPPED, T.FAILED)
# "-": not a valid pair (logged by the agent, activity kept).
MATRIX = {
    #                  STARTED  PAUSED  RESUMED  FINISHED  STOPPED  FAILED
    A.IDLE:            "PLAYING -       -        -         STOPPED  STOPPED",
    A.PLAYING:         "-       PAUSED  -        FINISHED  STOPPED  STOPPED",
    A.PAUSED:          "-       -       PLAYING  FINISHED  STOPPED  STOPPED",
    A.BUFFER_UNDERRUN: "-       -       -        -         STOPPED  STOPPED",
    A.FINISHED:        "PLAYING -       -        -         STOPPED  STOPPED",
    A.STOPPED:         "PLAYING -       -        -         STOPPED  STOPPED",
}
PAIRS = [
    (activity, trigger, cell)
    for activity, row in MATRIX.items()
    for trigger, cell in zip(COLUMNS, row.split(), strict=True)
]


def test_the_matrix_covers_every_pair() -> None:
    assert {(a, t) for a, t, _ in PAIRS} == set(itertools.product(A, T))
    assert set(ACTIVITY_TABLE) == set(A)


@pytest.mark.parametrize(("activity", "trigger", "cell"), PAIRS, ids=[f"{a}-{t}" for a, t, _ in PAIRS])
def test_every_pair(activity: A, trigger: T, cell: str) -> None:
    assert next_activity(activity, trigger) == (None if cell == "-" else A(cell))


def test_an_item_has_started_only_while_playing_or_paused() -> None:
    assert {a for a in A if item_started(a)} == {A.PLAYING, A.PAUSED}
