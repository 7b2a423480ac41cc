"""Every injected fault is observable from an httpx HTTP/2 client, and the server stays healthy after it."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from avsd.avs.multipart import MultipartParser, boundary_from_content_type
from avsd.emulator.faults import Fault, FaultKind, FaultTarget
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.emulator.server import Emulator
from avsd.errors import MultipartError

from .conftest import (
    assert_healthy,
    closing,
    event_json,
    metadata_part,
    multipart_headers,
    open_downchannel,
    parse_multipart,
)

SYNC = metadata_part(event_json("System", "SynchronizeState", context=[])) + closing()
SETTINGS_EVENT = metadata_part(event_json("Settings", "Ask")) + closing()
SMALL_200 = Rule(
    match="Settings.Ask",
    directives=(DirectiveSpec("Speaker", "SetVolume", {"volume": 10}),),
)


async def post(client: httpx.AsyncClient, auth: dict[str, str], body: bytes = SYNC) -> httpx.Response:
    return await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "UNAUTHORIZED_REQUEST_EXCEPTION"),
        (429, "THROTTLING_EXCEPTION"),
        (500, "INTERNAL_SERVICE_EXCEPTION"),
        (503, "N/A"),
    ],
)
@pytest.mark.parametrize("target", list(FaultTarget))
async def test_status_faults(
    emu: Emulator,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    status: int,
    code: str,
    target: FaultTarget,
) -> None:
    emu.inject(Fault(FaultKind.STATUS, target, status=status))
    if target is FaultTarget.EVENT:
        reply = await post(client, auth)
    elif target is FaultTarget.PING:
        reply = await client.get("/ping", headers=auth)
    else:
        reply = await client.get("/v20160207/directives", headers=auth)
    assert reply.status_code == status
    assert reply.json()["payload"]["code"] == code
    # Consumed: the next one is normal again.
    assert (await post(client, auth)).status_code == 204
    await assert_healthy(emu)


async def test_rst_stream_on_event(emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    emu.inject(Fault(FaultKind.RST_STREAM))
    with pytest.raises(httpx.RemoteProtocolError):
        await post(client, auth)
    assert (await post(client, auth)).status_code == 204  # same connection still works
    await assert_healthy(emu)


async def test_rst_stream_on_downchannel(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    async with open_downchannel(client, auth) as dc:
        await emu.wait_for_downchannel()
        emu.inject(Fault(FaultKind.RST_STREAM, FaultTarget.DOWNCHANNEL))
        async with asyncio.timeout(5):
            await dc.ended.wait()
        assert isinstance(dc.error, httpx.RemoteProtocolError)
    await assert_healthy(emu)


async def test_close_downchannel_ends_stream_cleanly(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    async with open_downchannel(client, auth) as dc:
        await emu.wait_for_downchannel()
        await emu.push_directive({"header": {"namespace": "A", "name": "B", "messageId": "1"}, "payload": {}})
        assert (await dc.next_directive())["directive"]["header"]["name"] == "B"
        emu.inject(Fault(FaultKind.CLOSE_DOWNCHANNEL))
        async with asyncio.timeout(5):
            await dc.ended.wait()
        assert dc.error is None
        assert dc.parser.complete  # a proper closing delimiter, then END_STREAM
    assert (await post(client, auth)).status_code == 204  # the connection itself stays up
    await assert_healthy(emu)


async def test_goaway_closes_connection(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    async with open_downchannel(client, auth) as dc:
        await emu.wait_for_downchannel()
        emu.inject(Fault(FaultKind.GOAWAY))
        async with asyncio.timeout(5):
            await dc.ended.wait()
        assert dc.error is not None
    async with asyncio.timeout(5):
        while emu.open_connections:
            await asyncio.sleep(0.01)
    assert (await client.get("/ping", headers=auth)).status_code == 204  # on a new connection
    assert emu.connection_count == 2
    await assert_healthy(emu)


async def test_stall(emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    emu.inject(Fault(FaultKind.STALL, seconds=0.4))
    started = time.monotonic()
    reply = await post(client, auth)
    assert reply.status_code == 204
    assert time.monotonic() - started >= 0.4
    with pytest.raises(httpx.ReadTimeout):
        emu.inject(Fault(FaultKind.STALL, seconds=5))
        await client.post("/v20160207/events", headers=multipart_headers(auth), content=SYNC, timeout=0.3)
    await assert_healthy(emu)


async def test_trickle(emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    emu.add_rule(SMALL_200)
    emu.inject(Fault(FaultKind.TRICKLE, chunk_bytes=50, interval_ms=20))
    chunks: list[bytes] = []
    async with client.stream(
        "POST", "/v20160207/events", headers=multipart_headers(auth), content=SETTINGS_EVENT
    ) as reply:
        assert reply.status_code == 200
        async for chunk in reply.aiter_raw():
            chunks.append(chunk)
    body = b"".join(chunks)
    assert len(chunks) >= len(body) // 50  # arrived in small pieces
    parts = parse_multipart(reply.headers["content-type"], body)
    assert json.loads(parts[0][1])["directive"]["header"]["name"] == "SetVolume"
    await assert_healthy(emu)


async def test_malformed_multipart_in_event_response(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_rule(SMALL_200)
    emu.inject(Fault(FaultKind.MALFORMED_MULTIPART))
    assert (await post(client, auth)).status_code == 204  # a 204 has no body to break: the fault waits
    reply = await post(client, auth, SETTINGS_EVENT)
    assert reply.status_code == 200
    with pytest.raises(MultipartError):
        parse_multipart(reply.headers["content-type"], reply.content)
    await assert_healthy(emu)


async def test_malformed_json_in_event_response(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.add_rule(SMALL_200)
    emu.inject(Fault(FaultKind.MALFORMED_JSON))
    reply = await post(client, auth, SETTINGS_EVENT)
    parts = parse_multipart(reply.headers["content-type"], reply.content)
    with pytest.raises(ValueError):
        json.loads(parts[0][1])


@pytest.mark.parametrize("kind", [FaultKind.MALFORMED_JSON, FaultKind.MALFORMED_MULTIPART])
async def test_malformed_on_downchannel(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str], kind: FaultKind
) -> None:
    async with open_downchannel(client, auth) as dc:
        await emu.wait_for_downchannel()
        emu.inject(Fault(kind, FaultTarget.DOWNCHANNEL))
        await emu.push_directive({"header": {"namespace": "A", "name": "B", "messageId": "1"}, "payload": {}})
        async with asyncio.timeout(5):
            while kind is FaultKind.MALFORMED_MULTIPART and dc.error is None:
                await asyncio.sleep(0.01)
        if kind is FaultKind.MALFORMED_MULTIPART:
            assert isinstance(dc.error, MultipartError)
        else:
            async with asyncio.timeout(5):
                _, data = await dc.parts.get()
            with pytest.raises(ValueError):
                json.loads(data)
    await assert_healthy(emu)


async def test_expire_tokens(emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert (await client.get("/ping", headers=auth)).status_code == 204
    emu.inject(Fault(FaultKind.EXPIRE_TOKENS))
    reply = await client.get("/ping", headers=auth)
    assert reply.status_code == 403
    assert reply.json()["payload"]["code"] == "UNAUTHORIZED_REQUEST_EXCEPTION"
    await assert_healthy(emu)  # a refresh grant gives a working token again


async def test_no_ping_answer(emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    emu.inject(Fault(FaultKind.NO_PING_ANSWER))
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/ping", headers=auth, timeout=0.3)
    assert (await client.get("/ping", headers=auth)).status_code == 204
    await assert_healthy(emu)


async def test_fault_match_narrows_to_one_event(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    emu.inject(Fault(FaultKind.STATUS, status=500, match="Settings.Ask"))
    assert (await post(client, auth)).status_code == 204
    assert (await post(client, auth, SETTINGS_EVENT)).status_code == 500


async def test_parser_rejects_garbage_from_fault_module() -> None:
    # Sanity: the bytes used for malformed_multipart on the downchannel really are rejected by a parser.
    from avsd.emulator.replies import DOWNCHANNEL_CONTENT_TYPE, encode_push

    parser = MultipartParser(boundary_from_content_type(DOWNCHANNEL_CONTENT_TYPE))
    with pytest.raises(MultipartError):
        parser.feed(encode_push(True, b"{}", {}, malformed_multipart=True))
