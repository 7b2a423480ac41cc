"""The loop-side state of one item, shared by every backend (implements :class:`~avsd.playback.base.Playback`).

Backend threads report through :meth:`PlaybackItem.post_started` / :meth:`post_done` /:meth:`post_offset`,
which hop onto the loop with ``call_soon_threadsafe``; everything else runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from avsd.errors import PlaybackError
from avsd.playback.base import Media, MediaKind, PlaybackOutcome, PlaybackStoppedError, check_volume
from avsd.playback.decode import volume_gain
from avsd.playback.stream import StreamBuffer
from avsd.tasks import TaskSet

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class PlaybackItem(ABC):
    backend = "player"

    def __init__(
        self, loop: asyncio.AbstractEventLoop, label: str, media: Media, start_offset_ms: int = 0
    ) -> None:
        self.id = next(_ids)
        self.media = media
        self.buffer: StreamBuffer | None = None  # STREAM media: the bytes between the loop and the backend
        self._pump: asyncio.Task[None] | None = None
        self.name = f"{label}-{self.id}"
        self._loop = loop
        self._started: asyncio.Future[None] = loop.create_future()
        self._finished: asyncio.Future[PlaybackOutcome] = loop.create_future()
        self.error: PlaybackError | None = None
        self.first_audio_time: float | None = None
        self.path: str | None = None  # the wav backend's output file
        self.start_offset_ms = start_offset_ms
        self._played_ms = 0
        self.stop_requested = False
        self.paused = False

    # -- Playback -------------------------------------------------------------------------------------------
    @property
    def offset_ms(self) -> int:
        return self.start_offset_ms + self._played_ms

    @property
    def done(self) -> bool:
        return self._finished.done()

    async def started(self) -> None:
        await asyncio.shield(self._started)

    async def finished(self) -> PlaybackOutcome:
        return await asyncio.shield(self._finished)

    async def stop(self) -> None:
        if self.done:
            return
        self.stop_requested = True
        await self._stop()
        await self.finished()

    async def pause(self) -> None:
        if self.done or self.paused:
            return
        self.paused = True
        await self._pause()

    async def resume(self) -> None:
        if self.done or not self.paused:
            return
        self.paused = False
        await self._resume()

    # -- backend hooks (loop) -------------------------------------------------------------------------------
    async def run(self, previous: PlaybackItem | None) -> None:
        """Play the item (after stopping ``previous``, so one output never has two writers); returns when the
        item has finished."""
        if previous is not None:
            await previous.stop()
        if self.stop_requested:
            self.mark_done(PlaybackOutcome.STOPPED)
            return
        log.info("%s: playing %s from %d ms (%s)", self.name, self.media.describe(), self.start_offset_ms, self.backend)
        if self.media.kind is MediaKind.STREAM and self.media.chunks is not None:
            self.buffer = StreamBuffer(self._loop)
            self._pump = asyncio.create_task(self.buffer.pump(self.media.chunks), name=f"{self.name}-pump")
        try:
            await self._start()
            await self.finished()
        finally:
            if self._pump is not None and not self._pump.done():
                self._pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pump

    @abstractmethod
    async def _start(self) -> None:
        """Hand the item to the backend (returns once it is under way)."""

    @abstractmethod
    async def _stop(self) -> None: ...

    @abstractmethod
    async def _pause(self) -> None: ...

    @abstractmethod
    async def _resume(self) -> None: ...

    # -- reports (loop) -------------------------------------------------------------------------------------
    def mark_started(self, when: float) -> None:
        if self._started.done():
            return
        self.first_audio_time = when
        self._started.set_result(None)
        log.debug("%s: first audio out", self.name)

    def mark_path(self, path: str | None) -> None:
        self.path = path

    def mark_offset(self, played_ms: int) -> None:
        self._played_ms = max(self._played_ms, played_ms)

    def mark_done(self, outcome: PlaybackOutcome, error: PlaybackError | None = None) -> None:
        if self._finished.done():
            return
        if outcome is PlaybackOutcome.FAILED and error is None:
            error = PlaybackError("playback failed")
        self.error = error
        if not self._started.done():
            self._started.set_exception(
                error
                if error is not None
                else PlaybackStoppedError(f"{self.name} stopped before audio started")
            )
            # Nobody may ever await started() (e.g. stop() before start); do not warn about it.
            self._started.exception()
        self._finished.set_result(outcome)
        if error is not None:
            log.warning("%s: %s (%s)", self.name, outcome.value, error)
        else:
            log.info("%s: %s at %d ms", self.name, outcome.value, self.offset_ms)

    # -- reports (any thread) -------------------------------------------------------------------------------
    def post_started(self, when: float) -> None:
        self._post(self.mark_started, when)

    def post_path(self, path: str | None) -> None:
        self._post(self.mark_path, path)

    def post_offset(self, played_ms: int) -> None:
        self._post(self.mark_offset, played_ms)

    def post_done(self, outcome: PlaybackOutcome, error: PlaybackError | None = None) -> None:
        self._post(self.mark_done, outcome, error)

    def _post(self, fn: object, *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)  # type: ignore[arg-type]
        except RuntimeError:  # loop closed: the daemon is gone, nobody is listening
            log.debug("%s: loop closed, dropped a report", self.name)


ItemT = TypeVar("ItemT", bound=PlaybackItem)


class ItemPlayer(ABC, Generic[ItemT]):
    """What every backend's player shares: one item at a time (a new ``play`` stops and awaits the previous one
    inside the new item's task), the volume, and stopping everything on close."""

    name = "player"

    def __init__(self, label: str, volume: int = 100) -> None:
        self.label = label
        self._volume = check_volume(volume)
        self.gain = volume_gain(volume)  # read by backend threads; a float swap is atomic
        self._current: ItemT | None = None
        self._runs = TaskSet(log, f"{label}-")
        self._closed = False

    @abstractmethod
    def _new_item(self, media: Media, offset_ms: int) -> ItemT: ...

    def play(self, media: Media, *, offset_ms: int = 0) -> ItemT:
        if self._closed:
            raise PlaybackError(f"{self.label} player is closed")
        item = self._new_item(media, max(0, offset_ms))
        previous, self._current = self._current, item
        self._runs.spawn(item.run(previous), f"{item.id}-run")
        return item

    def set_volume(self, volume: int) -> None:
        self._volume = check_volume(volume)
        self.gain = volume_gain(volume)

    @property
    def volume(self) -> int:
        return self._volume

    async def _stop_items(self) -> bool:
        """Stop what plays and wait for every item task; False if the player was already closed."""
        if self._closed:
            return False
        self._closed = True
        if self._current is not None:
            await self._current.stop()
        await self._runs.wait_all()
        return True
