"""Binary parts of AVS responses (Speak MP3, alert audio), readable while they are still arriving.

A directive names its audio as ``cid:ID``; the binary part carries ``Content-ID: <ID>`` (angle brackets stripped,
RFC 2392). The directive usually arrives *before* its attachment, so either side may create the entry first:
the parser calls :meth:`AttachmentStore.open` when the part starts, a player calls :meth:`AttachmentStore.get`
when it handles the directive; both get the same :class:`Attachment`.

An attachment keeps its chunks, so several readers (or a reader that starts late) all see every byte.
Everything here runs on the event loop; nothing blocks.

Memory is bounded by ``[attachments]`` (a Pi has 512 MB - 1 GB, and a binary part that never ends used to grow
the daemon one-for-one): one attachment may hold ``max_bytes``, all of them together ``total_bytes``. An
attachment that would pass either cap fails with :class:`AttachmentTooLargeError` and drops its chunks at once:
its readers (the Speak that wanted it) fail, the rest of the part is read and discarded, and the connection and
every other attachment go on. Before failing a growing attachment for the total, finished attachments are
evicted oldest first; finished attachments are also evicted ``max_age_s`` after they finished. A directive that
asks for an evicted attachment gets one that has already failed, instead of waiting for bytes that will not
come again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from avsd.errors import AttachmentTooLargeError, AvsConnectionError
from avsd.settings import setting

_LOGGER = logging.getLogger(__name__)

MIB = 1024 * 1024
_EVICTED_REMEMBERED = 256  # ids of evicted attachments remembered, so a late directive fails at once


@dataclass(frozen=True, slots=True)
class AttachmentSettings:
    # AVS Speak audio is MP3 at 24-48 kbit/s: 8 MiB is 23-47 minutes of speech, far beyond the longest answer
    # (a news briefing item is a few minutes, ~1-2 MiB); total 24 MiB is three such parts at once, ~5 % of a
    # 512 MB Pi, while the old unbounded store reached 413 MiB.
    max_bytes: int = setting(
        8 * MIB, "largest binary part (Speak audio) kept in memory, bytes; beyond it that directive fails", gt=0
    )
    total_bytes: int = setting(
        24 * MIB, "all binary parts kept in memory together, bytes; finished ones are evicted first", gt=0
    )
    max_age_s: float = setting(
        600.0, "a finished binary part nobody reads is forgotten after this long (seconds)", gt=0.0
    )
    max_entries: int = setting(64, "binary parts remembered at most (the oldest are forgotten)", min=1)


def content_id_from_url(url: str) -> str | None:
    """``cid:abc`` -> ``abc``; anything else (http URL, empty) -> None."""
    if url.startswith("cid:"):
        return url[4:].strip().strip("<>")
    return None


def normalize_content_id(header_value: str) -> str:
    """``<abc>`` -> ``abc`` (Content-ID header value, RFC 2392)."""
    return header_value.strip().strip("<>").strip()


class Attachment:
    """One binary part. Feed side: :meth:`feed`, :meth:`finish`, :meth:`fail`. Read side: ``async for``."""

    __slots__ = (
        "_changed",
        "_chunks",
        "_done",
        "_error",
        "_reserve",
        "content_id",
        "finished_at",
        "first_byte_at",
        "held",
        "size",
    )

    def __init__(
        self,
        content_id: str,
        *,
        reserve: Callable[[Attachment, int], str | None] | None = None,
    ) -> None:
        self.content_id = content_id
        self._chunks: list[bytes] = []
        self._done = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._reserve = reserve  # the store's memory caps: None = granted, else why not
        self.size = 0  # bytes received
        self.held = 0  # bytes kept in memory (0 after a failure that dropped them)
        self.first_byte_at: float | None = None  # time.monotonic() of the first byte (latency measurements)
        self.finished_at: float | None = None  # store clock when it completed (age eviction)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def started(self) -> bool:
        return bool(self._chunks) or self._done

    @property
    def error(self) -> BaseException | None:
        return self._error

    def feed(self, data: bytes) -> None:
        if self._done or not data:
            return
        if self._reserve is not None:
            refused = self._reserve(self, len(data))
            if refused is not None:
                _LOGGER.warning("attachment %s refused: %s; its directive fails", self.content_id, refused)
                self.fail(AttachmentTooLargeError(f"attachment {self.content_id}: {refused}"), drop=True)
                return
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        self._chunks.append(bytes(data))
        self.size += len(data)
        self.held += len(data)
        self._changed.set()

    def finish(self) -> None:
        self._done = True
        self._changed.set()

    def fail(self, error: BaseException, *, drop: bool = False) -> None:
        """End it with ``error`` for every reader; ``drop`` frees the chunks now (a reader mid-way stops too)."""
        if self._done:
            return
        self._error = error
        self._done = True
        if drop:
            self._chunks.clear()
            self.held = 0
        self._changed.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        index = 0
        while True:
            while index < len(self._chunks):
                yield self._chunks[index]
                index += 1
            if self._done:
                if self._error is not None:
                    if isinstance(self._error, AttachmentTooLargeError):
                        raise self._error
                    raise AvsConnectionError(f"attachment {self.content_id} broke off") from self._error
                return
            self._changed.clear()
            # Re-check after clear: feed() may have run between the loop test and clear().
            if index < len(self._chunks) or self._done:
                continue
            await self._changed.wait()

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])


class AttachmentStore:
    """Attachments by content id, bounded in count, bytes (each and together) and age; see the module doc."""

    def __init__(
        self,
        settings: AttachmentSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or AttachmentSettings()
        self._clock = clock
        self._entries: OrderedDict[str, Attachment] = OrderedDict()
        self._evicted: OrderedDict[str, None] = OrderedDict()
        self.refused = 0  # attachments failed for a cap (status, tests)
        self.evicted = 0  # attachments forgotten for count, bytes or age

    def __contains__(self, content_id: str) -> bool:
        return content_id in self._entries

    @property
    def held_bytes(self) -> int:
        """Bytes all remembered attachments keep in memory now."""
        return sum(entry.held for entry in self._entries.values())

    def open(self, content_id: str) -> Attachment:
        """The attachment to write a starting binary part into (creating it if a directive did not yet)."""
        content_id = normalize_content_id(content_id)
        self._evicted.pop(content_id, None)  # the server sends it (again): a new part, not the evicted one
        return self.get(content_id)

    def get(self, content_id: str) -> Attachment:
        content_id = normalize_content_id(content_id)
        self._expire()
        entry = self._entries.get(content_id)
        if entry is None:
            entry = Attachment(content_id, reserve=self._reserve)
            if content_id in self._evicted:
                entry.fail(AttachmentTooLargeError(f"attachment {content_id} was evicted from memory"))
                return entry
            self._entries[content_id] = entry
            while len(self._entries) > self.settings.max_entries:
                _, old = next(iter(self._entries.items()))
                self._evict(old, AvsConnectionError("attachment evicted before it was complete"))
        return entry

    def fail_incomplete(self, error: BaseException) -> None:
        """The stream carrying attachments died: wake every reader still waiting."""
        for entry in self._entries.values():
            if not entry.done:
                entry.fail(error)

    # -- bounds ------------------------------------------------------------------------------------------------

    def _evict(self, entry: Attachment, error: BaseException) -> None:
        self._entries.pop(entry.content_id, None)
        self._evicted[entry.content_id] = None
        while len(self._evicted) > _EVICTED_REMEMBERED:
            self._evicted.popitem(last=False)
        entry.fail(error)
        self.evicted += 1

    def _expire(self) -> None:
        now = self._clock()
        for entry in list(self._entries.values()):
            if entry.done and entry.finished_at is None:
                entry.finished_at = now  # first seen done: its age starts now
            elif entry.finished_at is not None and now - entry.finished_at >= self.settings.max_age_s:
                self._evict(entry, AvsConnectionError("attachment expired"))

    def _reserve(self, growing: Attachment, size: int) -> str | None:
        """Room for ``size`` more bytes of ``growing``: evict finished attachments, oldest first, if needed."""
        if growing.size + size > self.settings.max_bytes:
            self.refused += 1
            return f"larger than {self.settings.max_bytes} bytes (attachments.max_bytes)"
        self._expire()
        budget = self.settings.total_bytes
        held = self.held_bytes
        if held + size <= budget:
            return None
        for entry in list(self._entries.values()):
            if entry is growing or not entry.done:
                continue
            held -= entry.held
            self._evict(entry, AvsConnectionError("attachment evicted for memory"))
            if held + size <= budget:
                return None
        self.refused += 1
        return f"all attachments together would pass {budget} bytes (attachments.total_bytes)"
