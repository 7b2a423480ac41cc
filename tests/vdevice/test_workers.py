"""``avsd vdevice --workers 2`` as a user runs it (its own process, the local server as back-end): two server
processes on one port, the SQLite store shared between them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from avsd.vdevice.store import SqliteStore, Status
from tests.vdevice.conftest import REPLY, TOKEN

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def workers(self) -> list[int]:
        """The server worker processes (the supervisor's children that multiprocessing spawned)."""
        found = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(FileNotFoundError):
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(int(pid))
        return found


@contextlib.asynccontextmanager
async def avsd_vdevice(tmp_path: Path, *extra: str) -> AsyncIterator[Server]:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(f"reply_text = {json.dumps(REPLY)}\n")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "avsd", "vdevice", "--backend", "emulator", "--scenario", str(scenario),
            "--port", "0", "--state-dir", str(tmp_path / "state"), "--tokens", str(tokens), *extra,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert first.startswith("avsd vdevice: http://127.0.0.1:"), (first, log.read_text())
        yield Server(process, first.split()[2], log)
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)


async def _get(url: str, **params: str) -> tuple[str, dict[str, object]]:
    """One request on its own connection (the kernel picks the worker per connection): (worker, body)."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.get(url, params=params) as reply,
    ):
        assert reply.status == 200, await reply.text()
        return reply.headers["X-Avsd-Worker"], await reply.json()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_two_workers_share_async_conversations_and_stop_together(tmp_path: Path) -> None:
    # An unfinished conversation from before a restart: exactly one worker may resume it.
    (tmp_path / "state").mkdir()
    store = SqliteStore(tmp_path / "state" / "vdevice.sqlite")
    await store.create("conv-before", TOKEN, [{"text": "first"}])
    store.close()

    async with avsd_vdevice(tmp_path, "--workers", "2") as server, aiohttp.ClientSession() as http:
        workers = server.workers()
        assert len(workers) == 2
        messages = {"messages": [{"text": f"message {i}"} for i in range(3)]}
        async with http.post(server.url + "/batch_process", params={"user_id": TOKEN, "async_mode": "true"},
                             json=messages) as reply:
            conversation = (await reply.json())["conversation_id"]
        answered_by: set[str] = set()
        body: dict[str, object] = {}
        for _ in range(600):
            worker, body = await _get(server.url + "/conversation", uuid=conversation)
            answered_by.add(worker)
            if body["status"] != Status.IN_PROGRESS and len(answered_by) == 2:
                break
            await asyncio.sleep(0.1)
        assert answered_by == {"0", "1"}
        assert body["status"] == "COMPLETED", body
        results = body["results"]
        assert isinstance(results, list) and [r["message"] for r in results] == [f"message {i}" for i in range(3)]
        assert all("players" in r["transcript"].lower() for r in results), results
        assert (await _get(server.url + "/health"))[1] == {"status": "ok"}
        for _ in range(300):
            if (await _get(server.url + "/conversation", uuid="conv-before"))[1]["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.1)
        assert server.log.read_text().count("resuming conversation conv-before") == 1

        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.process.wait(), 30) == 0
        assert all(_gone(pid) for pid in workers)


async def test_a_killed_worker_stops_the_service(tmp_path: Path) -> None:
    async with avsd_vdevice(tmp_path, "--workers", "2") as server:
        victim, other = server.workers()
        os.kill(victim, signal.SIGKILL)
        # exit 1, so systemd's Restart=on-failure starts the whole service again
        assert await asyncio.wait_for(server.process.wait(), 30) == 1
        assert f"(pid {victim}) exited with code -9: stopping the others" in server.log.read_text()
        assert _gone(other)
        with pytest.raises(aiohttp.ClientConnectionError):
            await _get(server.url + "/health")


async def test_bad_worker_count_is_a_config_error(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "vdevice", "--workers", "0", "--state-dir", str(tmp_path),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 78
    assert err.decode().startswith("avsd: --workers") and len(err.decode().strip().splitlines()) == 1


async def test_a_stopped_conversation_stays_stopped(tmp_path: Path) -> None:
    # A job in one worker finishing after a stop made through another must not undo the stop.
    store = SqliteStore(tmp_path / "vdevice.sqlite")
    await store.create("conv", TOKEN, [{"text": "a"}])
    await store.finish("conv", Status.ERROR, "stopped by the client", "user")
    await store.finish("conv", Status.COMPLETED)
    found = await store.get("conv")
    store.close()
    assert found is not None and found.status is Status.ERROR and found.error == "stopped by the client"
