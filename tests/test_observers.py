"""The one observer mechanism: order, removal, isolation (logged with the name, counted), and what it does not
swallow."""

from __future__ import annotations

import asyncio
import logging

import pytest

from avsd.observers import FAILURES, Observers


def test_observers_run_in_order_and_can_be_removed() -> None:
    seen: list[str] = []
    subject: Observers[int] = Observers("numbers")
    subject.add(lambda n: seen.append(f"a{n}"), name="a")
    remove_b = subject.add(lambda n: seen.append(f"b{n}"), name="b")
    subject.notify(1)
    remove_b()
    remove_b()  # twice is harmless
    subject.notify(2)
    assert seen == ["a1", "b1", "a2"] and len(subject) == 1


def test_a_raising_observer_is_logged_by_name_counted_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []

    class LedDriver:
        def on_state(self, n: int) -> None:
            raise OSError(121, "Remote I/O error")

    subject: Observers[int] = Observers("dialog state")
    subject.add(LedDriver().on_state)
    subject.add(seen.append)
    before = FAILURES["dialog state/test_a_raising_observer_is_logged_by_name_counted_and_isolated.LedDriver.on_state"]
    with caplog.at_level(logging.ERROR, logger="avsd.observers"):
        subject.notify(1)
        subject.notify(2)
    assert seen == [1, 2]
    name = "test_a_raising_observer_is_logged_by_name_counted_and_isolated.LedDriver.on_state"
    assert subject.failures == {name: 2}
    assert FAILURES[f"dialog state/{name}"] == before + 2
    assert "dialog state observer " + name + " failed" in caplog.text and "Remote I/O error" in caplog.text


def test_cancellation_is_not_a_failure() -> None:
    def cancelled(_: int) -> None:
        raise asyncio.CancelledError

    subject: Observers[int] = Observers("x")
    subject.add(cancelled)
    with pytest.raises(asyncio.CancelledError):
        subject.notify(1)
    assert not subject.failures
