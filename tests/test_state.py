"""The dialog state table, pair by pair, plus the invariants that keep the device from getting stuck."""

from __future__ import annotations

import itertools
import logging

import pytest

from avsd.state import IGNORED, DialogMachine, DialogState, DialogTimeouts, Transition, Trigger, next_state

S, T = DialogState, Trigger

# Every (state, trigger) pair, written out by hand (not derived from the table): a state name is the target, REST
# resolves by the facts (MUTED if muted, else IDLE online, OFFLINE offline), "-" is an expected no-op (IGNORED), "!"
# is unexpected (logged and counted). Columns follow the Trigger order below.
COLUMNS = (T.WAKE_WORD, T.BUTTON_TAP, T.BUTTON_HOLD, T.CAPTURE_DONE, T.NO_SPEECH, T.SPEECH_HEARD, T.SPEECH_STARTED,
           T.SPEECH_FINISHED, T.EXPECT_SPEECH, T.DIALOG_DONE, T.STOP, T.FAILED, T.TIMEOUT, T.MUTE_TOGGLE, T.CONNECTED,
           T.DISCONNECTED)
#              WAKE    TAP     HOLD    CAPDONE   NOSPCH HEARD   SSTART    SFIN  EXPECT     DDONE STOP  FAILED TIMEOUT MUTE   CONN  DISC  # noqa: E501
MATRIX = {
    S.IDLE:      "LISTEN  LISTEN  LISTEN  !         !      !       SPEAKING  -     EXPECTING  -     !     -      !       MUTED  -     OFFLINE",  # noqa: E501
    S.LISTENING: "!       !       !       THINKING  REST   !       -         -     !          -     REST  REST   REST    MUTED  -     REST",  # noqa: E501
    S.THINKING:  "LISTEN  LISTEN  LISTEN  !         !      !       SPEAKING  -     EXPECTING  REST  REST  REST   REST    MUTED  -     REST",  # noqa: E501
    S.SPEAKING:  "LISTEN  LISTEN  LISTEN  !         !      !       -         REST  EXPECTING  -     REST  REST   REST    MUTED  -     REST",  # noqa: E501
    S.EXPECTING: "LISTEN  LISTEN  LISTEN  !         REST   LISTEN  -         -     !          -     REST  REST   REST    MUTED  -     REST",  # noqa: E501
    S.MUTED:     "!       !       !       !         !      !       -         -     !          -     !     -      !       REST   -     -",  # noqa: E501
    S.OFFLINE:   "!       !       !       !         !      !       SPEAKING  -     !          -     !     -      REST    MUTED  IDLE  -",  # noqa: E501
}
_NAMES = {"LISTEN": S.LISTENING, "THINKING": S.THINKING, "SPEAKING": S.SPEAKING, "EXPECTING": S.EXPECTING,
          "MUTED": S.MUTED, "OFFLINE": S.OFFLINE, "IDLE": S.IDLE}
PAIRS = [
    (state, trigger, cell)
    for state, row in MATRIX.items()
    for trigger, cell in zip(COLUMNS, row.split(), strict=True)
]
FACTS = [(True, False), (False, False), (True, True), (False, True)]


def test_the_matrix_covers_every_pair() -> None:
    assert len(PAIRS) == len(S) * len(T) == 112
    assert {(state, trigger) for state, trigger, _ in PAIRS} == set(itertools.product(S, T))


def _resolved(cell: str, online: bool, muted: bool) -> S:
    if cell == "REST":
        return S.MUTED if muted else (S.IDLE if online else S.OFFLINE)
    return _NAMES[cell]


@pytest.mark.parametrize(("state", "trigger", "cell"), PAIRS, ids=[f"{s}-{t}" for s, t, _ in PAIRS])
def test_every_pair(state: S, trigger: T, cell: str, caplog: pytest.LogCaptureFixture) -> None:
    for online, muted in FACTS:
        expected = None if cell in ("-", "!") else _resolved(cell, online, muted)
        assert next_state(state, trigger, online=online, muted=muted) == expected, (online, muted)
    assert (trigger in IGNORED[state]) == (cell == "-")
    # Through the machine: a no-op changes nothing; only an unexpected pair is logged and counted.
    machine = DialogMachine(DialogTimeouts(), connected=lambda: True)
    machine.state = state
    machine.muted = state is S.MUTED
    seen: list[Transition] = []
    machine.add_observer(seen.append)
    caplog.set_level(logging.WARNING, logger="avsd.state")
    result = machine.fire(trigger, 1.0)
    if cell in ("-", "!"):
        assert result is None and seen == [] and machine.state is state
        assert sum(machine.unexpected.values()) == (cell == "!")
        assert ("unexpected trigger" in caplog.text) == (cell == "!")
    else:
        muted_after = (state is not S.MUTED) if trigger is T.MUTE_TOGGLE else (state is S.MUTED)
        assert machine.muted == muted_after
        assert result is not None and seen == [result] and result.state is _resolved(cell, True, machine.muted)
        assert not machine.unexpected and "unexpected trigger" not in caplog.text


@pytest.mark.parametrize("state", list(S))
def test_every_state_but_idle_and_muted_has_a_timeout_that_leaves_it_or_rechecks(state: S) -> None:
    timeouts = DialogTimeouts()
    limit = timeouts.for_state(state)
    if state in (S.IDLE, S.MUTED):
        assert limit is None
        return
    assert limit is not None and limit > 0
    after = next_state(state, T.TIMEOUT, online=True, muted=False)
    assert after is not None and after != state


@pytest.mark.parametrize(("state", "online"), list(itertools.product(list(S), [True, False])))
def test_mute_toggle_is_honoured_in_every_state(state: S, online: bool) -> None:
    # Facts passed in are the facts *after* the toggle: muting from anywhere but MUTED, unmuting from MUTED.
    muted_after = state is not S.MUTED
    after = next_state(state, T.MUTE_TOGGLE, online=online, muted=muted_after)
    assert after is not None
    assert (after is S.MUTED) == muted_after


@pytest.mark.parametrize("state", [S.LISTENING, S.THINKING, S.SPEAKING, S.EXPECTING])
def test_every_dialog_state_can_be_left_by_failure_stop_and_disconnect(state: S) -> None:
    for trigger in (T.FAILED, T.STOP, T.DISCONNECTED, T.TIMEOUT):
        assert next_state(state, trigger, online=False, muted=False) == S.OFFLINE
        assert next_state(state, trigger, online=True, muted=False) in (S.IDLE, S.OFFLINE)


class Link:
    """The connection's owner as the machine sees it: one fact it reads, never copies."""

    def __init__(self, up: bool) -> None:
        self.up = up

    def __call__(self) -> bool:
        return self.up


def test_machine_reads_the_connection_tracks_deadlines_and_tells_observers() -> None:
    seen: list[Transition] = []
    link = Link(False)
    machine = DialogMachine(DialogTimeouts(listening_s=5.0, thinking_s=3.0), connected=link)
    machine.add_observer(seen.append)
    assert machine.state is S.OFFLINE and not machine.online
    link.up = True
    assert machine.online  # read from the owner, not a copy
    machine.fire(T.CONNECTED, 0.0)
    assert machine.state is S.IDLE and machine.deadline is None
    machine.fire(T.WAKE_WORD, 1.0)
    assert machine.state is S.LISTENING and machine.deadline == 6.0
    assert machine.check_timeout(5.9) is None
    machine.fire(T.CAPTURE_DONE, 2.0)
    assert machine.deadline == 5.0
    timed_out = machine.check_timeout(5.0)
    assert timed_out is not None and timed_out.trigger is T.TIMEOUT and machine.state is S.IDLE
    assert [t.state for t in seen] == [S.IDLE, S.LISTENING, S.THINKING, S.IDLE]


def test_expect_speech_timeout_comes_from_the_directive_and_its_data_lives_with_the_state() -> None:
    machine = DialogMachine(DialogTimeouts(), connected=lambda: True)
    machine.fire(T.EXPECT_SPEECH, 10.0, timeout_s=8.0, data="initiator")
    assert machine.state is S.EXPECTING and machine.deadline == 18.0 and machine.data == "initiator"
    machine.fire(T.SPEECH_HEARD, 11.0)
    assert machine.state is S.LISTENING and machine.data is None


def test_a_disconnect_while_muted_is_remembered_by_the_owner_not_the_machine() -> None:
    link = Link(True)
    machine = DialogMachine(DialogTimeouts(), connected=link)
    machine.fire(T.MUTE_TOGGLE, 0.0)
    link.up = False
    assert machine.fire(T.DISCONNECTED, 1.0) is None and machine.state is S.MUTED
    machine.fire(T.MUTE_TOGGLE, 2.0)
    assert machine.state is S.OFFLINE


def test_an_observer_that_raises_is_isolated_named_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    machine = DialogMachine(DialogTimeouts(), connected=lambda: True)
    after: list[Transition] = []

    def spi_glitch(transition: Transition) -> None:
        if transition.state is S.THINKING:
            raise OSError("SPI transfer failed")

    machine.add_observer(spi_glitch)
    machine.add_observer(after.append)
    machine.fire(T.WAKE_WORD, 0.0)
    transition = machine.fire(T.CAPTURE_DONE, 1.0)  # must not raise
    assert transition is not None and machine.state is S.THINKING
    assert [t.state for t in after] == [S.LISTENING, S.THINKING]  # the next observer still ran
    assert machine.observers.failures == {"test_an_observer_that_raises_is_isolated_named_and_counted.spi_glitch": 1}
    assert "spi_glitch failed" in caplog.text and "SPI transfer failed" in caplog.text
