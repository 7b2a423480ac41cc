"""A bounded byte pipe from the event loop (attachment chunks) to a decoder thread (VLC's read callback, miniaudio).

The loop side awaits :meth:`StreamBuffer.put` (it waits, without blocking the loop, while the buffer is full); the
thread side blocks in :meth:`StreamBuffer.read` until bytes, end of stream, or :meth:`abort`. The reader wakes a
waiting writer through ``loop.call_soon_threadsafe`` only: the asyncio.Event is never touched from the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterable

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 256 * 1024  # about 40 s of 48 kbit/s speech MP3; the writer waits beyond this


class StreamBuffer:
    """Thread-safe, bounded; one writer (the loop), one reader (a decoder thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int = DEFAULT_CAPACITY) -> None:
        self._loop = loop
        self._capacity = capacity
        self._chunks: deque[memoryview] = deque()
        self._size = 0
        self._eof = False
        self._aborted = False
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._space = asyncio.Event()
        self.first_byte_time: float | None = None  # perf_counter() when the first byte became readable
        self.total_in = 0
        self.total_out = 0

    # -- loop side ------------------------------------------------------------------------------------------
    async def put(self, data: bytes) -> None:
        if not data:
            return
        while True:
            with self._cond:
                if self._aborted or self._eof:
                    return
                if self._size < self._capacity:
                    self._chunks.append(memoryview(data))
                    self._size += len(data)
                    self.total_in += len(data)
                    if self.first_byte_time is None:
                        self.first_byte_time = time.perf_counter()
                    self._cond.notify_all()
                    return
                self._space.clear()
            await self._space.wait()

    def finish(self, error: BaseException | None = None) -> None:
        """End of stream (after the remaining bytes are read). ``error``: the source broke off."""
        with self._cond:
            if not self._eof:
                self._eof = True
                self.error = error
            self._cond.notify_all()

    async def pump(self, chunks: AsyncIterable[bytes]) -> None:
        """Copy ``chunks`` into the buffer, then mark the end. A source failure ends the stream with the error."""
        try:
            async for chunk in chunks:
                await self.put(chunk)
                if self._aborted:
                    return
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception as exc:  # the source (an Attachment) broke off: the decoder sees a truncated stream
            log.warning("audio stream broke off after %d bytes: %s", self.total_in, exc)
            self.finish(exc)
        else:
            self.finish()

    # -- any thread -----------------------------------------------------------------------------------------
    def abort(self) -> None:
        """Wake and release both sides; reads return ``None`` from now on."""
        with self._cond:
            self._aborted = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()
        self._wake_writer()

    @property
    def aborted(self) -> bool:
        return self._aborted

    # -- reader thread --------------------------------------------------------------------------------------
    def read(self, max_bytes: int) -> bytes | None:
        """Up to ``max_bytes``, blocking until at least one byte. ``b""`` at end of stream, ``None`` if aborted."""
        with self._cond:
            while not self._chunks and not self._eof and not self._aborted:
                self._cond.wait()
            if self._aborted:
                return None
            if not self._chunks:
                return b""
            out = bytearray()
            while self._chunks and len(out) < max_bytes:
                head = self._chunks[0]
                take = head[: max_bytes - len(out)]
                out += take
                if len(take) == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[len(take) :]
            self._size -= len(out)
            self.total_out += len(out)
            wake = self._size < self._capacity
        if wake:
            self._wake_writer()
        return bytes(out)

    def _wake_writer(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._space.set)
