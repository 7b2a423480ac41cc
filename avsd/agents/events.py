"""Sending state events (SpeechStarted, VolumeChanged, ...) without blocking the agent that produced them.

Agents call :meth:`EventQueue.send`, which returns at once; one worker task sends the events in order through the
AVS client. Ordinary events are not retried (the SDK does not either, §9.2): while offline they are dropped with a
log line. Alerts' events, which must survive being offline, go through the certified outbox instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from avsd.avs.messages import Event
from avsd.errors import AvsdError

_LOGGER = logging.getLogger(__name__)


class EventSender(Protocol):
    def send(self, event: Event) -> None:
        """Queue ``event`` for sending; never blocks."""
        ...


class EventQueue:
    def __init__(self, send_event: Callable[[Event], Awaitable[object]], *, max_queued: int = 256) -> None:
        self._send_event = send_event
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max_queued)
        self.dropped = 0

    def send(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            _LOGGER.warning("event queue full; dropping %s", event.qualified_name)

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._send_event(event)
            except AvsdError as exc:
                self.dropped += 1
                _LOGGER.info("%s not sent: %s", event.qualified_name, exc)
            except Exception:
                # The service-loop boundary: a failure that escaped the client's error mapping costs this one
                # event, not the worker (which used to end the daemon's TaskGroup, issue 8 defect 1).
                self.dropped += 1
                _LOGGER.exception("%s not sent: unexpected error", event.qualified_name)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued event was sent or dropped (shutdown, tests)."""
        await self._queue.join()
