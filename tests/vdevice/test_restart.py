"""Async conversations survive a restart: results kept, the rest of the messages said after it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from avsd.emulator.server import Emulator
from avsd.vdevice.store import SqliteStore, Status
from tests.vdevice.conftest import REPLY, TOKEN, running_vdevice

pytestmark = pytest.mark.timeout(120)


async def test_unfinished_conversation_resumes_after_restart(tmp_path: Path) -> None:
    # The state a killed server left: a conversation with two messages, one answered.
    store = SqliteStore(tmp_path / "vdevice.sqlite")
    kept = {"message": "first", "transcript": "kept from before the restart", "status": "IN_PROGRESS"}
    await store.create("conv-1", TOKEN, [{"text": "first"}, {"text": "what time is it"}])
    await store.add_result("conv-1", 0, kept)
    store.close()

    async with Emulator(cert_dir=tmp_path / "certs", reply_text=REPLY) as emulator, running_vdevice(
        emulator, tmp_path
    ) as url, aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(url + "/conversation", params={"uuid": "conv-1"}) as reply:
                body = json.loads(await reply.text())
            if body["status"] != Status.IN_PROGRESS:
                break
            await asyncio.sleep(0.1)
        assert body["status"] == "COMPLETED", body
        assert [r["message"] for r in body["results"]] == ["first", "what time is it"]
        assert body["results"][0]["transcript"] == "kept from before the restart"
        assert "how many players" in body["results"][1]["transcript"].lower()
        # another token may not read it
        async with http.get(url + "/conversation", params={"uuid": "conv-1", "user_id": "x" * 20}) as reply:
            assert reply.status == 404


async def test_conversation_stop(tmp_path: Path) -> None:
    async with Emulator(cert_dir=tmp_path / "certs", reply_text=REPLY) as emulator, running_vdevice(
        emulator, tmp_path
    ) as url, aiohttp.ClientSession() as http:
        messages = {"messages": [{"text": f"message {i}"} for i in range(20)]}
        async with http.post(url + "/batch_process", params={"user_id": TOKEN, "async_mode": "true"},
                             json=messages) as reply:
            conversation = (await reply.json())["conversation_id"]
        async with http.post(url + "/conversation_stop", json={"uuid": conversation}) as reply:
            assert reply.status == 200 and await reply.text() == ""
        async with http.get(url + "/conversation", params={"uuid": conversation}) as reply:
            body = await reply.json()
        assert body["status"] == "ERROR" and body["error"] == "stopped by the client"
        assert len(body["results"]) < 20
