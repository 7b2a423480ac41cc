"""Binary parts of AVS responses (Speak MP3, alert audio), readable while they are still arriving.

A directive names its audio as ``cid:ID``; the binary part carries ``Content-ID: <ID>`` (angle brackets stripped,
RFC 2392). The directive usually arrives *before* its attachment, so either side may create the entry first:
the parser calls :meth:`AttachmentStore.open` when the part starts, a player calls :meth:`AttachmentStore.get`
when it handles the directive; both get the same :class:`Attachment`.

An attachment keeps its chunks, so several readers (or a reader that starts late) all see every byte.
Everything here runs on the event loop; nothing blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator

from avsd.errors import AvsConnectionError


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

    __slots__ = ("_changed", "_chunks", "_done", "_error", "content_id", "first_byte_at", "size")

    def __init__(self, content_id: str) -> None:
        self.content_id = content_id
        self._chunks: list[bytes] = []
        self._done = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self.size = 0
        self.first_byte_at: float | None = None  # time.monotonic() of the first byte (latency measurements)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def started(self) -> bool:
        return bool(self._chunks) or self._done

    def feed(self, data: bytes) -> None:
        if self._done or not data:
            return
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        self._chunks.append(bytes(data))
        self.size += len(data)
        self._changed.set()

    def finish(self) -> None:
        self._done = True
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        if self._done:
            return
        self._error = error
        self._done = True
        self._changed.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        index = 0
        while True:
            while index < len(self._chunks):
                yield self._chunks[index]
                index += 1
            if self._done:
                if self._error is not None:
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
    """Attachments by content id, bounded: the oldest are forgotten beyond ``max_entries``."""

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: OrderedDict[str, Attachment] = OrderedDict()
        self._max_entries = max_entries

    def __contains__(self, content_id: str) -> bool:
        return content_id in self._entries

    def open(self, content_id: str) -> Attachment:
        """The attachment to write a starting binary part into (creating it if a directive did not yet)."""
        return self.get(content_id)

    def get(self, content_id: str) -> Attachment:
        content_id = normalize_content_id(content_id)
        entry = self._entries.get(content_id)
        if entry is None:
            entry = Attachment(content_id)
            self._entries[content_id] = entry
            while len(self._entries) > self._max_entries:
                _, old = self._entries.popitem(last=False)
                old.fail(AvsConnectionError("attachment evicted before it was complete"))
        return entry

    def fail_incomplete(self, error: BaseException) -> None:
        """The stream carrying attachments died: wake every reader still waiting."""
        for entry in self._entries.values():
            if not entry.done:
                entry.fail(error)
