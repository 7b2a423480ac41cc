"""The one atomic file write: temp file in the same directory, fsync, rename, fsync the directory.

After a power cut or ``kill -9`` the file holds either the old or the new content, never a mix or nothing:
the data is on disk before the rename (fsync of the file), and the rename itself is on disk before we return
(fsync of the directory). Blocking: on an SD card an fsync takes from a few to a few hundred milliseconds, so
callers on the event loop run it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, dir_mode: int = 0o755) -> None:
    """Replace ``path`` with ``data`` atomically and durably; the file gets ``mode`` (0600 for secrets).

    The temp file is created 0600 by ``mkstemp`` and only then given ``mode``, so a secret is never readable
    by others, not even for a moment. OSError on failure; the temp file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateFileWriter:
    """Writes a small JSON state file off the event loop, latest value wins.

    ``save(doc)`` returns at once; one worker thread write runs at a time (``asyncio.to_thread``: the fsync
    takes up to a few hundred ms on an SD card and must not stall audio or the downchannel), and a value saved
    while a write runs is written once more after it. ``flush()`` waits until the latest value is on disk.
    Without a running loop (start-up, tests) the write happens in place.
    """

    def __init__(self, path: Path, what: str) -> None:
        self._path = path
        self._what = what
        self._pending: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def save(self, doc: Mapping[str, Any]) -> None:
        self._pending = dict(doc)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_pending()
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name=f"save-{self._path.name}")

    async def _drain(self) -> None:
        while self._pending is not None:
            await asyncio.to_thread(self._write_pending)

    def _write_pending(self) -> None:
        doc, self._pending = self._pending, None
        if doc is None:
            return
        try:
            atomic_write(self._path, json.dumps(doc).encode())
        except OSError as exc:
            _LOGGER.warning("cannot save the %s to %s: %s", self._what, self._path, exc)

    async def flush(self) -> None:
        task = self._task
        if task is not None and not task.done():
            await asyncio.shield(task)
