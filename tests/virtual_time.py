"""Virtual loop time for timing tests: the running loop's clock replaced by a manual one."""

from __future__ import annotations

import asyncio

import pytest


class VirtualTime:
    """The running loop's clock replaced by a manual one (for ``call_later``, ``asyncio.sleep`` and any part given
    it as its clock): timing is tested exactly, without real sleeps or margins."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        monkeypatch.setattr(loop, "time", lambda: self.now)

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        """Move time on and let every timer that fell due (and what it schedules) run."""
        self.now += seconds
        for _ in range(10):
            await asyncio.sleep(0)

    async def run_for(self, seconds: float, step: float = 0.01) -> None:
        """Advance ``seconds`` in ``step``s, so periodic timers fire as often as they would in real time."""
        for _ in range(round(seconds / step)):
            await self.advance(step)
