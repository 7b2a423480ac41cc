"""Helpers shared by the benchmarks (not a benchmark itself: bench/run.py runs only bench_*.py)."""

from __future__ import annotations

import asyncio
import statistics
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from avsd.emulator.scenario import Rule
from avsd.emulator.server import Emulator

T = TypeVar("T")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


class EmulatorThread:
    """An Emulator on its own loop in a daemon thread."""

    def __init__(self, cert_dir: Path, *, recognize_204: bool = True, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.emulator = Emulator(cert_dir=cert_dir, **{"stop_capture": False, **kwargs})
        self._recognize_204 = recognize_204
        self._thread = threading.Thread(target=self.loop.run_forever, name="emulator", daemon=True)

    def __enter__(self) -> Emulator:
        self._thread.start()
        self.call(self.emulator.start)
        if self._recognize_204:
            self.emulator.add_rule(Rule(match="SpeechRecognizer.Recognize", status=204))
        return self.emulator

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def wrapper() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)

    def __exit__(self, *exc: object) -> None:
        self.call(self.emulator.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
