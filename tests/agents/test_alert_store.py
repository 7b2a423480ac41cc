"""AlertStore on real SQLite files, including a writer killed with SIGKILL right after put()."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from avsd.agents.alert_schedule import Alert, AlertState, AlertType, Asset
from avsd.agents.alert_store import AlertStore, AlertStoreError

LIMIT = 10.0
WHEN = datetime(2030, 1, 2, 6, 30, tzinfo=UTC)


def full_alert(token: str = "tok-1") -> Alert:
    return Alert(
        token=token,
        type=AlertType.REMINDER,
        scheduled_time=WHEN,
        assets=(Asset("a1", "https://example.com/1.mp3"), Asset("a2", "https://example.com/2.mp3")),
        asset_play_order=("a2", "a1"),
        background_asset="a1",
        loop_count=3,
        loop_pause_ms=1500,
        label="take the bins out",
        state=AlertState.ACTIVE,
        started_at=datetime(2030, 1, 2, 6, 30, 5, tzinfo=UTC),
    )


async def test_round_trip_update_delete_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "alerts.db"
    async with asyncio.timeout(LIMIT):
        store = AlertStore(path)
        await store.put(full_alert())
        await store.put(Alert("tok-0", AlertType.TIMER, datetime(2029, 1, 1, tzinfo=UTC)))
        assert await store.get("tok-1") == full_alert()
        assert [a.token for a in await store.all()] == ["tok-0", "tok-1"]  # ordered by time
        await store.put(Alert("tok-0", AlertType.TIMER, datetime(2031, 1, 1, tzinfo=UTC)))  # replace by token
        assert [a.token for a in await store.all()] == ["tok-1", "tok-0"]
        assert await store.delete("tok-0") is True
        assert await store.delete("tok-0") is False
        store.close()
        reopened = AlertStore(path)
        assert await reopened.all() == [full_alert()]
        await reopened.replace_all([Alert("x", AlertType.ALARM, WHEN)])
        assert [a.token for a in await reopened.all()] == ["x"]
        reopened.close()
    with pytest.raises(AlertStoreError, match="closed"):
        await reopened.get("x")


def test_wal_and_full_sync_are_on(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    journal = store._run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    sync = store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    store.close()
    assert (journal, sync) == ("wal", 2)  # 2 == FULL


def test_not_a_database_is_an_alert_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(AlertStoreError, match=str(bad)):
        AlertStore(bad)


WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from datetime import UTC, datetime
    from avsd.agents.alert_schedule import Alert, AlertType
    from avsd.agents.alert_store import AlertStore

    async def main() -> None:
        store = AlertStore(sys.argv[1])
        for i in range(int(sys.argv[2])):
            await store.put(Alert(f"tok-{i}", AlertType.ALARM, datetime(2030, 1, 1, 7, i, tzinfo=UTC)))
        print("stored", flush=True)
        time.sleep(60)  # wait to be killed, connection still open, no clean close

    asyncio.run(main())
    """
)


def test_put_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "stored"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=LIMIT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The -wal file still holds the commits (no checkpoint happened); a new connection must see them.
    assert Path(f"{path}-wal").exists()
    store = AlertStore(path)
    tokens = asyncio.run(store.all())
    store.close()
    assert [a.token for a in tokens] == [f"tok-{i}" for i in range(5)]
