"""Helpers for the library / `avsd ask` tests: an emulator with server think time, MP3 checks."""

from __future__ import annotations

import asyncio
from typing import Any

import miniaudio

from avsd.emulator.events import EventHandler
from avsd.emulator.server import Emulator


class _ThinkingHandler(EventHandler):
    """Think time AFTER the early 200 headers, as AVS answers a Recognize: headers at once, the directives when
    the answer is ready. (A scenario rule's ``delay_s`` holds the headers instead, which is a different server.)"""

    def __init__(self, emulator: Emulator, think_s: float) -> None:
        super().__init__(emulator)
        self.think_s = think_s
        self.in_flight = 0
        self.max_in_flight = 0

    async def render(self, spec: Any, dialog_request_id: str | None, event: Any = None) -> Any:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.think_s)
            return await super().render(spec, dialog_request_id, event)
        finally:
            self.in_flight -= 1


def thinking_emulator(think_s: float, **kwargs: Any) -> tuple[Emulator, _ThinkingHandler]:
    emulator = Emulator(**kwargs)
    handler = _ThinkingHandler(emulator, think_s)
    emulator._events = handler  # the emulator has no think-time knob with early headers; see the class doc
    return emulator, handler


def mp3_seconds(data: bytes) -> float:
    """Decode with miniaudio (a real MP3 decoder); raises if it is not MP3."""
    info = miniaudio.mp3_get_info(data)
    return float(info.duration)
