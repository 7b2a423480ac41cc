"""The dialog state table, pair by pair, plus the invariants that keep the device from getting stuck."""

from __future__ import annotations

import itertools

import pytest

from avsd.state import DialogMachine, DialogState, DialogTimeouts, Transition, Trigger, next_state

S, T = DialogState, Trigger

# (state, trigger, online, muted) -> expected; written out by hand, not derived from the table.
EXPECTED = [
    (S.IDLE, T.WAKE_WORD, True, False, S.LISTENING),
    (S.IDLE, T.BUTTON_TAP, True, False, S.LISTENING),
    (S.IDLE, T.BUTTON_HOLD, True, False, S.LISTENING),
    (S.IDLE, T.SPEECH_STARTED, True, False, S.SPEAKING),
    (S.IDLE, T.EXPECT_SPEECH, True, False, S.EXPECTING),
    (S.IDLE, T.DISCONNECTED, False, False, S.OFFLINE),
    (S.IDLE, T.MUTE_TOGGLE, True, True, S.MUTED),
    (S.IDLE, T.CAPTURE_DONE, True, False, None),
    (S.IDLE, T.TIMEOUT, True, False, None),
    (S.LISTENING, T.CAPTURE_DONE, True, False, S.THINKING),
    (S.LISTENING, T.NO_SPEECH, True, False, S.IDLE),
    (S.LISTENING, T.TIMEOUT, True, False, S.IDLE),
    (S.LISTENING, T.FAILED, True, False, S.IDLE),
    (S.LISTENING, T.DISCONNECTED, False, False, S.OFFLINE),
    (S.LISTENING, T.MUTE_TOGGLE, True, True, S.MUTED),
    (S.LISTENING, T.WAKE_WORD, True, False, None),
    (S.THINKING, T.SPEECH_STARTED, True, False, S.SPEAKING),
    (S.THINKING, T.EXPECT_SPEECH, True, False, S.EXPECTING),
    (S.THINKING, T.DIALOG_DONE, True, False, S.IDLE),
    (S.THINKING, T.TIMEOUT, True, False, S.IDLE),
    (S.THINKING, T.WAKE_WORD, True, False, S.LISTENING),
    (S.THINKING, T.FAILED, False, False, S.OFFLINE),
    (S.SPEAKING, T.SPEECH_FINISHED, True, False, S.IDLE),
    (S.SPEAKING, T.SPEECH_FINISHED, False, False, S.OFFLINE),
    (S.SPEAKING, T.SPEECH_FINISHED, True, True, S.MUTED),
    (S.SPEAKING, T.WAKE_WORD, True, False, S.LISTENING),
    (S.SPEAKING, T.BUTTON_TAP, True, False, S.LISTENING),
    (S.SPEAKING, T.STOP, True, False, S.IDLE),
    (S.SPEAKING, T.EXPECT_SPEECH, True, False, S.EXPECTING),
    (S.EXPECTING, T.SPEECH_HEARD, True, False, S.LISTENING),
    (S.EXPECTING, T.NO_SPEECH, True, False, S.IDLE),
    (S.EXPECTING, T.TIMEOUT, True, False, S.IDLE),
    (S.EXPECTING, T.BUTTON_TAP, True, False, S.LISTENING),
    (S.MUTED, T.MUTE_TOGGLE, True, False, S.IDLE),
    (S.MUTED, T.MUTE_TOGGLE, False, False, S.OFFLINE),
    (S.MUTED, T.WAKE_WORD, True, True, None),
    (S.MUTED, T.BUTTON_TAP, True, True, None),
    (S.MUTED, T.TIMEOUT, True, True, None),
    (S.OFFLINE, T.CONNECTED, True, False, S.IDLE),
    (S.OFFLINE, T.WAKE_WORD, False, False, None),
    (S.OFFLINE, T.BUTTON_TAP, False, False, None),
    (S.OFFLINE, T.MUTE_TOGGLE, False, True, S.MUTED),
    (S.OFFLINE, T.TIMEOUT, True, False, S.IDLE),
    (S.OFFLINE, T.TIMEOUT, False, False, S.OFFLINE),
]


@pytest.mark.parametrize(("state", "trigger", "online", "muted", "expected"), EXPECTED)
def test_transition(state: S, trigger: T, online: bool, muted: bool, expected: S | None) -> None:
    assert next_state(state, trigger, online=online, muted=muted) == expected


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


def test_machine_tracks_facts_deadlines_and_tells_observers() -> None:
    seen: list[Transition] = []
    machine = DialogMachine(DialogTimeouts(listening_s=5.0, thinking_s=3.0), online=False)
    machine.add_observer(seen.append)
    assert machine.state is S.OFFLINE
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


def test_expect_speech_timeout_comes_from_the_directive() -> None:
    machine = DialogMachine(DialogTimeouts(), online=True)
    machine.fire(T.EXPECT_SPEECH, 10.0, timeout_s=8.0)
    assert machine.state is S.EXPECTING and machine.deadline == 18.0


def test_ignored_trigger_changes_nothing_but_facts() -> None:
    machine = DialogMachine(DialogTimeouts(), online=True)
    machine.fire(T.WAKE_WORD, 0.0)
    assert machine.fire(T.CONNECTED, 1.0) is None
    assert machine.state is S.LISTENING
    machine.fire(T.DISCONNECTED, 2.0)
    assert machine.state is S.OFFLINE and not machine.online
