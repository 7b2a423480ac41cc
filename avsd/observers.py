"""The one observer mechanism: a named list of callbacks, each isolated from the others and from the caller.

    subject ──notify(value)──> Observers ──> observer 1 (LEDs)
                                         ├─> observer 2 (systemd STATUS)   an exception here is logged with the
                                         └─> observer 3 (focus)            observer's name, counted, and dropped

Why isolated: an observer is someone else's code (an LED driver on SPI, a status printer, a front-end's hook). Its
failure must not reach the subject: a raise out of ``DialogMachine.fire`` used to end the daemon's TaskGroup
(issue 8, defect 2). ``CancelledError`` and other ``BaseException``s are not caught: they are not failures.

Observers run synchronously, in the order they were added, on the thread that notifies (the loop thread in avsd).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")
Observer = Callable[[T], None]

# Failures of every observer in the process, by "subject/observer" (bench and soak read it).
FAILURES: Counter[str] = Counter()


def observer_name(observer: Callable[..., object]) -> str:
    """A readable name for a callback: ``Hardware._on_transition``, ``on_mute``, ``TransitionPrinter``."""
    name = getattr(observer, "__qualname__", None)
    if name is None:
        name = type(observer).__qualname__
    return str(name).replace(".<locals>", "")


class Observers(Generic[T]):
    """Callbacks of one subject (``subject`` names it in logs)."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self._observers: list[tuple[str, Observer[T]]] = []
        self.failures: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._observers)

    def add(self, observer: Observer[T], *, name: str | None = None) -> Callable[[], None]:
        """Add ``observer``; returns a function that removes it again."""
        entry = (name or observer_name(observer), observer)
        self._observers.append(entry)

        def remove() -> None:
            if entry in self._observers:
                self._observers.remove(entry)

        return remove

    def notify(self, value: T) -> None:
        for name, observer in list(self._observers):
            try:
                observer(value)
            except Exception:
                self.failures[name] += 1
                FAILURES[f"{self.subject}/{name}"] += 1
                _LOGGER.exception("%s observer %s failed (failure %d)", self.subject, name, self.failures[name])


__all__ = ["FAILURES", "Observer", "Observers", "observer_name"]
