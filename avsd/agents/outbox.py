"""Certified sender: a durable FIFO of events that must reach AVS even if produced offline (§6.6, §9.2).

Alert events (SetAlertSucceeded/Failed, DeleteAlertSucceeded/Failed, AlertStarted, AlertStopped) go through
here. ``put()`` returns once the event is fsynced (SQLite, WAL, ``synchronous=FULL``); ``run()`` delivers
entries oldest first, one at a time, whenever the connection is up.

When an entry is deleted follows the SDK's ``MessageRequest::isServerStatus`` (§9.2): as soon as AVS
*answered* (2xx, or any ``AvsServerError``: 400, 429, 500, 503, ...) the event was received and is deleted;
retrying a 400 unchanged would fail forever. The exception is 403 (the SDK's INVALID_AUTH is not a server
status): the token was refused, so the event is kept and retried once the auth layer has refreshed it.
Transport failures (``NotConnectedError``, ``AvsConnectionError``, ``AvsProtocolError``, ``AuthError``) and
unexpected exceptions keep the entry at the head and retry after an exponential, jittered back-off, or at
once when ``set_connected(True)`` reports a reconnect. A crash between AVS's answer and the delete re-sends
that event after restart: delivery is at-least-once, and never out of order.

A certified event keeps its messageId across restarts (issue 8 defect 6: AlertStarted went out twice, with two
messageIds, when the daemon was killed while an alert rang), so AVS can de-duplicate it. The outbox also
de-duplicates itself: ``put()`` of a messageId that is already waiting, or was delivered recently (the last
``_DELIVERED_KEPT`` acknowledged ids, in the same file, recorded in the transaction that deletes the entry),
stores nothing. A producer that derives the id from what the event means (the Alerts agent: one AlertStarted
per alert and scheduled time) can therefore put the same event again after any crash without sending it twice,
and ask :meth:`Outbox.seen` whether it was produced before.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import random
import sqlite3
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from avsd.agents.alert_store import open_sqlite
from avsd.avs.backoff import Backoff
from avsd.errors import AvsdError, AvsServerError
from avsd.settings import setting

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)"
_SCHEMA_DELIVERED = (
    "CREATE TABLE IF NOT EXISTS delivered (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE)"
)
_DELIVERED_KEPT = 1000  # a few days of alert events; only recent re-puts (after a crash) need finding


def message_id_of(event_json: bytes) -> str | None:
    """``event.header.messageId`` of a serialised event; None if there is none (then nothing is de-duplicated)."""
    try:
        doc = json.loads(event_json)
        value = doc["event"]["header"]["messageId"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) and value else None


class OutboxError(AvsdError):
    """The outbox database cannot be opened, read or written."""

    code = "outbox-store"


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    max_entries: int = setting(
        100, "events kept while offline; the oldest is dropped beyond this", min=1, max=100000
    )
    retry_initial_s: float = setting(1.0, "first back-off after a failed send (seconds)", gt=0.0, max=60.0)
    retry_max_s: float = setting(60.0, "longest back-off between send attempts (seconds)", gt=0.0, max=3600.0)


class Outbox:
    def __init__(
        self,
        path: str | Path,
        send: Callable[[bytes], Awaitable[None]],
        settings: OutboxSettings | None = None,
        *,
        connected: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self._path = Path(path)
        self._send = send
        self._settings = settings or OutboxSettings()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._wakeup = asyncio.Event()
        self._connected = connected
        self._acked = 0
        try:
            self._conn: sqlite3.Connection | None = open_sqlite(self._path)
            self._conn.execute(_SCHEMA)
            self._conn.execute(_SCHEMA_DELIVERED)
            rows = self._conn.execute("SELECT id, body FROM outbox ORDER BY id").fetchall()
            delivered = self._conn.execute("SELECT message_id FROM delivered").fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self._path}: {exc}") from exc
        # In-memory mirror of the table, oldest first; the table is the truth after a crash.
        self._pending: deque[tuple[int, bytes]] = deque((i, bytes(b)) for i, b in rows)
        self._pending_ids: dict[int, str] = {}
        for row_id, body in self._pending:
            message_id = message_id_of(body)
            if message_id is not None:
                self._pending_ids[row_id] = message_id
        self._delivered: set[str] = {r[0] for r in delivered}
        self.duplicates = 0  # put() calls that found their messageId already waiting or delivered
        if self._pending:
            log.info("outbox %s: %d event(s) waiting from before", self._path, len(self._pending))

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def acknowledged(self) -> int:
        """How many entries AVS acknowledged (and were deleted) since this object was made."""
        return self._acked

    def pending(self) -> list[bytes]:
        return [body for _, body in self._pending]

    def seen(self, message_id: str) -> bool:
        """True if an event with this messageId is waiting here or was delivered recently."""
        return message_id in self._delivered or message_id in self._pending_ids.values()

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                raise OutboxError("outbox is closed")
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self._path}: {exc}") from exc

    async def put(self, event_json: bytes) -> None:
        """Append an event; durable when this returns. Beyond ``max_entries`` the oldest entry is dropped.

        An event whose messageId is already waiting or was delivered recently is not stored again.
        """
        limit = self._settings.max_entries
        message_id = message_id_of(event_json)
        if message_id is not None and self.seen(message_id):
            self.duplicates += 1
            log.info("outbox: event %s was queued before; not queued again", message_id)
            return

        def op(conn: sqlite3.Connection) -> tuple[int, list[int]]:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                new_id = conn.execute("INSERT INTO outbox (body) VALUES (?)", (event_json,)).lastrowid
                dropped = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM outbox ORDER BY id DESC LIMIT -1 OFFSET ?", (limit,)
                    )
                ]
                conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in dropped])
            assert new_id is not None
            return new_id, dropped

        new_id, dropped = await asyncio.to_thread(self._run, op)
        if dropped:
            log.warning("outbox full (%d); dropped %d oldest event(s)", limit, len(dropped))
            gone = set(dropped)
            self._pending = deque(e for e in self._pending if e[0] not in gone)
            for row_id in gone:
                self._pending_ids.pop(row_id, None)
        # Concurrent puts may resume out of commit order; keep the mirror sorted by row id.
        bisect.insort(self._pending, (new_id, event_json))
        if message_id is not None:
            self._pending_ids[new_id] = message_id
        self._wakeup.set()

    def set_connected(self, connected: bool) -> None:
        """Called by the connection manager (on the loop). A reconnect ends any back-off at once."""
        self._connected = connected
        if connected:
            self._wakeup.set()

    async def _wait(self, seconds: float | None) -> None:
        self._wakeup.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Deliver forever (cancel to stop). An entry being sent when cancelled stays for next time."""
        cfg = self._settings
        backoff = Backoff.exponential(cfg.retry_initial_s, cfg.retry_max_s, jitter=(0.5, 1.0), rng=self._rng)
        while True:
            if not self._pending or not self._connected:
                await self._wait(None)
                backoff.reset()
                continue
            entry_id, body = self._pending[0]
            try:
                await self._send(body)
            except AvsServerError as exc:
                if exc.status == 403:
                    log.warning("outbox: AVS refused the token (403); keeping the event for a retry")
                    await self._wait(backoff.next_delay())
                    continue
                log.warning(
                    "outbox: AVS answered %d %s; event acknowledged, not retried",
                    exc.status,
                    exc.exception_code,
                )
            except Exception as exc:
                log.info("outbox: send failed (%s: %s); retrying", type(exc).__name__, exc)
                await self._wait(backoff.next_delay())
                continue
            await self._ack(entry_id)
            backoff.reset()

    async def _ack(self, entry_id: int) -> None:
        message_id = self._pending_ids.get(entry_id)

        def op(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))
                if message_id is not None:
                    # In the same transaction: after a crash the event is either still waiting or delivered.
                    conn.execute("INSERT OR IGNORE INTO delivered (message_id) VALUES (?)", (message_id,))
                    conn.execute(
                        "DELETE FROM delivered WHERE seq <= (SELECT MAX(seq) FROM delivered) - ?",
                        (_DELIVERED_KEPT,),
                    )

        await asyncio.to_thread(self._run, op)
        self._pending_ids.pop(entry_id, None)
        if message_id is not None:
            self._delivered.add(message_id)
            if len(self._delivered) > 2 * _DELIVERED_KEPT:  # the table is the truth; reload the kept window
                rows = await asyncio.to_thread(
                    self._run, lambda conn: conn.execute("SELECT message_id FROM delivered").fetchall()
                )
                self._delivered = {r[0] for r in rows}
        if self._pending and self._pending[0][0] == entry_id:
            self._pending.popleft()
        else:  # dropped for space meanwhile, or no longer at the head
            self._pending = deque(e for e in self._pending if e[0] != entry_id)
        self._acked += 1

    async def drained(self) -> None:
        """Wait until nothing is pending (tests, and a clean shutdown that wants to flush)."""
        while self._pending:  # noqa: ASYNC110 - the deque has no change notification; a short poll is enough
            await asyncio.sleep(0.005)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
