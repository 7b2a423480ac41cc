"""Persistent alert store (protocol reference §6.6 "Offline / persistence requirements").

One SQLite file, one connection, WAL journal with ``synchronous=FULL``: a ``put()`` that returned has been
fsynced, so it survives ``kill -9`` and power loss. The Alerts agent calls ``await store.put(alert)`` *before*
sending SetAlertSucceeded, so AVS never believes in an alert the device could forget.

Why ``asyncio.to_thread``: each call is tiny, but with ``synchronous=FULL`` every commit waits for an fsync,
which on a Raspberry Pi SD card takes from a few to a few hundred milliseconds. The event loop also keeps the
downchannel, pings and the audio upload going, so commits run on a worker thread; a lock serialises the one
connection (``check_same_thread=False``). Opening the store (schema creation) is synchronous: it happens
once at start-up, before the services run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from avsd.agents.alert_schedule import Alert, AlertState, AlertType, Asset
from avsd.errors import AvsdError

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    token TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    scheduled_time TEXT NOT NULL,      -- ISO-8601, UTC
    state TEXT NOT NULL,
    started_at TEXT,
    label TEXT NOT NULL DEFAULT '',
    loop_count INTEGER,
    loop_pause_ms INTEGER NOT NULL DEFAULT 0,
    background_asset TEXT,
    assets TEXT NOT NULL DEFAULT '[]', -- [[assetId, url], ...]
    asset_play_order TEXT NOT NULL DEFAULT '[]'
)
"""
_COLUMNS = (
    "token, type, scheduled_time, state, started_at, label, loop_count, loop_pause_ms, background_asset, "
    "assets, asset_play_order"
)


class AlertStoreError(AvsdError):
    """The alert database cannot be opened, read or written (disk full, corrupt file, permissions)."""

    code = "alert-store"


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A connection with the durability settings every avsd store uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _row(alert: Alert) -> tuple[Any, ...]:
    return (
        alert.token,
        str(alert.type),
        alert.scheduled_time.isoformat(),
        str(alert.state),
        alert.started_at.isoformat() if alert.started_at else None,
        alert.label,
        alert.loop_count,
        alert.loop_pause_ms,
        alert.background_asset,
        json.dumps([[a.asset_id, a.url] for a in alert.assets]),
        json.dumps(list(alert.asset_play_order)),
    )


def _alert(row: tuple[Any, ...]) -> Alert:
    (token, kind, scheduled, state, started, label, loop_count, loop_pause, background, assets, order) = row
    return Alert(
        token=token,
        type=AlertType(kind),
        scheduled_time=datetime.fromisoformat(scheduled),
        assets=tuple(Asset(i, u) for i, u in json.loads(assets)),
        asset_play_order=tuple(json.loads(order)),
        background_asset=background,
        loop_count=loop_count,
        loop_pause_ms=loop_pause,
        label=label,
        state=AlertState(state),
        started_at=datetime.fromisoformat(started) if started else None,
    )


class AlertStore:
    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection | None = open_sqlite(self._path)
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise AlertStoreError(f"{self._path}: schema version {version} is newer than this avsd")
                self._conn.execute(_SCHEMA)
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise AlertStoreError(f"cannot open alert store {self._path}: {exc}") from exc
        log.info("alert store %s opened", self._path)

    @property
    def path(self) -> Path:
        return self._path

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                raise AlertStoreError("alert store is closed")
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise AlertStoreError(f"alert store {self._path}: {exc}") from exc

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._run, fn)

    async def put(self, alert: Alert) -> None:
        """Insert or replace by token; durable (fsynced) when this returns."""

        def op(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    f"INSERT OR REPLACE INTO alerts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", _row(alert)
                )

        await self._call(op)
        log.debug("stored alert %s (%s, %s)", alert.token, alert.type, alert.state)

    async def delete(self, token: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with conn:
                return conn.execute("DELETE FROM alerts WHERE token = ?", (token,)).rowcount > 0

        return await self._call(op)

    async def get(self, token: str) -> Alert | None:
        def op(conn: sqlite3.Connection) -> Alert | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE token = ?", (token,)).fetchone()
            return _alert(row) if row else None

        return await self._call(op)

    async def all(self) -> list[Alert]:
        def op(conn: sqlite3.Connection) -> list[Alert]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM alerts ORDER BY scheduled_time, token").fetchall()
            out: list[Alert] = []
            for row in rows:
                try:
                    out.append(_alert(row))
                except (ValueError, TypeError) as exc:
                    # A row written by a newer/older avsd that we cannot read must not stop the rest ringing.
                    log.warning("skipping unreadable alert row %r: %s", row[0], exc)
            return out

        return await self._call(op)

    async def replace_all(self, alerts: list[Alert]) -> None:
        """Atomically make the store hold exactly ``alerts`` (used after start-up recovery)."""

        def op(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM alerts")
                conn.executemany(
                    f"INSERT INTO alerts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [_row(a) for a in alerts],
                )

        await self._call(op)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
