"""Where the virtual device keeps what a second instance (or a restart) needs: conversations, results, audio.

``ConversationStore`` is the interface; ``SqliteStore`` the default (one file, WAL, every call in a worker
thread so the loop never waits on the disk). A PostgreSQL store can implement the same six methods when
several processes serve one farm (architecture.md, "Beyond one machine").

A conversation keeps its messages, so a restart resumes an unfinished async batch from the first message that
has no result yet, and every result already produced is still there.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class Status(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Conversation:
    uuid: str
    token: str
    status: Status
    messages: list[dict[str, Any]]
    results: list[dict[str, Any]]
    error: str = ""
    error_category: str = ""


class ConversationStore(Protocol):
    async def create(self, uuid: str, token: str, messages: Sequence[dict[str, Any]]) -> None: ...
    async def add_result(self, uuid: str, index: int, result: dict[str, Any]) -> None: ...
    async def finish(self, uuid: str, status: Status, error: str = "", error_category: str = "") -> None:
        """End a conversation that is IN_PROGRESS (one already ended stays as it is)."""
    async def get(self, uuid: str) -> Conversation | None: ...
    async def unfinished(self) -> list[Conversation]: ...
    async def put_audio(self, audio_id: str, content_type: str, data: bytes) -> None: ...
    async def get_audio(self, audio_id: str) -> tuple[str, bytes] | None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    uuid TEXT PRIMARY KEY, token TEXT NOT NULL, status TEXT NOT NULL, messages TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '', error_category TEXT NOT NULL DEFAULT '', created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    uuid TEXT NOT NULL, idx INTEGER NOT NULL, result TEXT NOT NULL, PRIMARY KEY (uuid, idx)
);
CREATE TABLE IF NOT EXISTS audio (
    id TEXT PRIMARY KEY, content_type TEXT NOT NULL, data BLOB NOT NULL, created REAL NOT NULL
);
"""


class SqliteStore:
    """The default store. ``retention_s`` bounds how long audio and finished conversations are kept."""

    def __init__(self, path: Path | str, *, retention_s: float = 7 * 24 * 3600.0) -> None:
        self._path = str(path)
        self._retention_s = retention_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._prune()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def _call(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return await asyncio.to_thread(self._run, sql, args)

    def _prune(self) -> None:
        cutoff = time.time() - self._retention_s
        with self._lock:
            self._db.execute("DELETE FROM audio WHERE created < ?", (cutoff,))
            old = "SELECT uuid FROM conversations WHERE created < ? AND status != 'IN_PROGRESS'"
            self._db.execute(f"DELETE FROM results WHERE uuid IN ({old})", (cutoff,))
            self._db.execute("DELETE FROM conversations WHERE created < ? AND status != 'IN_PROGRESS'", (cutoff,))

    async def create(self, uuid: str, token: str, messages: Sequence[dict[str, Any]]) -> None:
        await self._call(
            "INSERT INTO conversations (uuid, token, status, messages, created) VALUES (?, ?, ?, ?, ?)",
            (uuid, token, Status.IN_PROGRESS.value, json.dumps(list(messages)), time.time()),
        )

    async def add_result(self, uuid: str, index: int, result: dict[str, Any]) -> None:
        await self._call("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (uuid, index, json.dumps(result)))

    async def finish(self, uuid: str, status: Status, error: str = "", error_category: str = "") -> None:
        # Only a running conversation ends: a job in one process must not turn a stop made through another
        # (ERROR, "stopped by the client") into COMPLETED.
        await self._call(
            "UPDATE conversations SET status = ?, error = ?, error_category = ? WHERE uuid = ? AND status = ?",
            (status.value, error, error_category, uuid, Status.IN_PROGRESS.value),
        )

    async def get(self, uuid: str) -> Conversation | None:
        rows = await self._call(
            "SELECT uuid, token, status, messages, error, error_category FROM conversations WHERE uuid = ?", (uuid,)
        )
        if not rows:
            return None
        results = await self._call("SELECT result FROM results WHERE uuid = ? ORDER BY idx", (uuid,))
        return _conversation(rows[0], [json.loads(r[0]) for r in results])

    async def unfinished(self) -> list[Conversation]:
        rows = await self._call(
            "SELECT uuid FROM conversations WHERE status = ? ORDER BY created", (Status.IN_PROGRESS.value,)
        )
        found = [await self.get(r[0]) for r in rows]
        return [c for c in found if c is not None]

    async def put_audio(self, audio_id: str, content_type: str, data: bytes) -> None:
        row = (audio_id, content_type, data, time.time())
        await self._call("INSERT OR REPLACE INTO audio VALUES (?, ?, ?, ?)", row)

    async def get_audio(self, audio_id: str) -> tuple[str, bytes] | None:
        rows = await self._call("SELECT content_type, data FROM audio WHERE id = ?", (audio_id,))
        return (rows[0][0], bytes(rows[0][1])) if rows else None


def _conversation(row: Sequence[Any], results: list[dict[str, Any]]) -> Conversation:
    uuid, token, status, messages, error, category = row
    return Conversation(uuid, token, Status(status), json.loads(messages), results, error, category)
