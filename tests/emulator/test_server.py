"""The emulator over real TLS + HTTP/2 on 127.0.0.1, with httpx as the device."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator

import httpx
import miniaudio
import pytest

from avsd.emulator.h2conn import MAX_CONCURRENT_STREAMS
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.emulator.server import Emulator, NoDownchannelError

from .conftest import (
    BOUNDARY,
    audio_part_header,
    client_for,
    closing,
    event_json,
    metadata_part,
    multipart_headers,
    open_downchannel,
    parse_multipart,
    recognize_json,
)


async def test_token_ping_and_unknown_path(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    ping = await client.get("/ping", headers=auth)
    assert ping.http_version == "HTTP/2"
    assert ping.status_code == 204
    assert (await client.get("/v20160207/nothing", headers=auth)).status_code == 404
    assert (await client.post("/ping", headers=auth)).status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic abc", "Bearer "])
async def test_bad_token_is_403_with_exception_body(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    for method, path in (("GET", "/ping"), ("GET", "/v20160207/directives")):
        reply = await client.request(method, path, headers=headers)
        assert reply.status_code == 403
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["payload"]["code"] == "UNAUTHORIZED_REQUEST_EXCEPTION"
        assert reply.json()["header"]["name"] == "Exception"


async def test_accept_any_token(tmp_path: object) -> None:
    async with Emulator(accept_any_token=True) as emu, client_for(emu) as c:
        assert (await c.get("/ping", headers={"authorization": "Bearer whatever"})).status_code == 204
        assert (await c.get("/ping")).status_code == 403


async def test_settings_advertise_ten_streams(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await client.get("/ping", headers=auth)
    pool = client._transport._pool  # type: ignore[attr-defined]
    h2conn = pool.connections[0]._connection._h2_state
    assert h2conn.remote_settings.max_concurrent_streams == MAX_CONCURRENT_STREAMS == 10


async def test_downchannel_push_arrives_as_part(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    with pytest.raises(NoDownchannelError):
        await emu.push_directive({"header": {"namespace": "A", "name": "B", "messageId": "1"}, "payload": {}})
    async with client.stream("GET", "/v20160207/directives", headers=auth) as dc:
        assert dc.status_code == 200
        # Reproduce the unquoted type parameter exactly (§3.1).
        assert (
            dc.headers["content-type"] == "multipart/related; boundary=------abcde123; type=application/json"
        )
        await emu.wait_for_downchannel()
        await emu.push_directive(
            {
                "header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "m1"},
                "payload": {"volume": 30},
            },
            attachments={"chime": b"\x00\x01binary"},
        )
        from .conftest import DownchannelReader

        reader = DownchannelReader(dc)
        try:
            doc = await reader.next_directive()
            assert doc["directive"]["header"]["name"] == "SetVolume"
            assert doc["directive"]["payload"] == {"volume": 30}
            async with asyncio.timeout(5):
                headers, data = await reader.parts.get()
            assert headers["content-id"] == "<chime>"
            assert headers["content-type"] == "application/octet-stream"
            assert data == b"\x00\x01binary"
        finally:
            await reader.close()


@pytest.mark.parametrize(
    ("content_type", "body", "why"),
    [
        ("application/json", event_json("System", "SynchronizeState", context=[]), "not multipart"),
        (None, metadata_part(b"{not json") + closing(), "bad JSON"),
        (
            None,
            metadata_part(b'{"event": {"header": {"name": "X", "messageId": "1"}}}') + closing(),
            "namespace",
        ),
        (None, metadata_part(event_json("System", "SynchronizeState")) + closing(), "context"),
        (None, metadata_part(event_json("PlaybackController", "PlayCommandIssued")) + closing(), "context"),
        (
            None,
            metadata_part(event_json("SpeechRecognizer", "Recognize", context=[])) + closing(),
            "dialogRequestId",
        ),
        (None, metadata_part(event_json("System", "UserInactivityReport")), "truncated multipart"),
        (None, f"--{BOUNDARY}--\r\n".encode(), "no metadata part"),
    ],
)
async def test_bad_event_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], content_type: str | None, body: bytes, why: str
) -> None:
    headers = multipart_headers(auth) if content_type is None else {**auth, "content-type": content_type}
    reply = await client.post("/v20160207/events", headers=headers, content=body)
    assert reply.status_code == 400, why
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["payload"]["code"] == "INVALID_REQUEST_EXCEPTION"


@pytest.mark.parametrize(
    ("event", "part_name"),
    [
        (event_json("System", "SynchronizeState", context=[]), "metadata"),
        (event_json("SpeechSynthesizer", "SpeechStarted", {"token": "t"}), "metadata"),
        (event_json("Alerts", "SetAlertSucceeded", {"token": "t"}), "request"),  # alexa_client's part name
        (event_json("System", "ExceptionEncountered", {"unparsedDirective": "x"}, context=[]), "metadata"),
    ],
)
async def test_state_events_are_204(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str], event: bytes, part_name: str
) -> None:
    reply = await client.post(
        "/v20160207/events",
        headers=multipart_headers(auth),
        content=metadata_part(event, part_name) + closing(),
    )
    assert reply.status_code == 204
    name = json.loads(event)["event"]["header"]
    record = await emu.wait_for_event(f"{name['namespace']}.{name['name']}")
    assert record.status == 204
    assert record.headers["authorization"] == "Bearer <redacted>"


async def test_upload_recorded_while_streaming(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    chunks = [bytes([i]) * 320 for i in range(1, 31)]
    seen_mid_upload: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield metadata_part(recognize_json("CLOSE_TALK")) + audio_part_header()
        for index, chunk in enumerate(chunks):
            yield chunk
            if index == 4:
                # The server must have parsed the event and the first audio before the upload ends.
                record = await emu.wait_for_event("SpeechRecognizer.Recognize")
                async with asyncio.timeout(5):
                    while len(record.audio) < 5 * 320:
                        await asyncio.sleep(0.005)
                seen_mid_upload.append(len(record.audio))
                assert not record.body_complete.is_set()
        yield closing()

    reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body())
    assert reply.status_code == 200
    assert seen_mid_upload and seen_mid_upload[0] < len(chunks) * 320
    record = await emu.wait_for_event("SpeechRecognizer.Recognize")
    assert bytes(record.audio) == b"".join(chunks)
    assert sum(n for _, n in record.audio_chunks) == len(record.audio)
    times = [t for t, _ in record.audio_chunks]
    assert times == sorted(times)
    assert record.body_complete.is_set()
    # CLOSE_TALK: never a StopCapture (no downchannel needed, nothing pushed).
    assert record.event is not None and record.event["event"]["header"]["dialogRequestId"] == "dialog-1"


async def test_near_field_stop_capture_then_speak(
    emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str], speech_pcm: bytes
) -> None:
    async with open_downchannel(client, auth) as dc:
        await emu.wait_for_downchannel()
        stop_capture: list[dict[str, object]] = []
        uploaded = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal uploaded
            yield metadata_part(recognize_json("NEAR_FIELD", "dialog-near")) + audio_part_header()
            padded = speech_pcm + bytes(32000 * 4)  # keep "talking" silence until the cloud says stop
            for offset in range(0, len(padded), 3200):
                yield padded[offset : offset + 3200]
                uploaded = offset + 3200
                await asyncio.sleep(0.01)  # ~10x real time
                if not dc.parts.empty():
                    stop_capture.append(await dc.next_directive())
                    break
            yield closing()

        async with asyncio.timeout(20):
            reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body())
        assert stop_capture, "no StopCapture during the upload"
        header = stop_capture[0]["directive"]["header"]  # type: ignore[index]
        assert (header["namespace"], header["name"]) == ("SpeechRecognizer", "StopCapture")
        assert "dialogRequestId" not in header
        assert uploaded < len(speech_pcm) + 32000 * 2  # stopped by endpointing, not by running out of audio

    assert reply.status_code == 200
    assert reply.headers["content-type"].endswith('type="application/json"')
    parts = parse_multipart(reply.headers["content-type"], reply.content)
    speak = json.loads(parts[0][1])["directive"]
    assert speak["header"]["name"] == "Speak"
    assert speak["header"]["dialogRequestId"] == "dialog-near"
    assert speak["payload"]["format"] == "AUDIO_MPEG"
    assert speak["payload"]["token"]
    cid = speak["payload"]["url"].removeprefix("cid:")
    binary = [data for headers, data in parts if headers.get("content-id") == f"<{cid}>"]
    assert len(binary) == 1
    decoded = miniaudio.decode(binary[0])
    assert decoded.duration > 0.5


async def test_capabilities(emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    good = {
        "envelopeVersion": "20160207",
        "capabilities": [{"type": "AlexaInterface", "interface": "Alerts"}],
    }
    path = "/v1/devices/@self/capabilities"
    assert (await client.put(path, headers=auth, json=good)).status_code == 204
    assert json.loads(emu.records[-1].body) == good
    bad = await client.put(path, headers=auth, json={"capabilities": []})
    assert bad.status_code == 400 and "envelopeVersion" in bad.json()["message"]
    assert (await client.put(path, headers=auth, content=b"nope")).status_code == 400
    assert (await client.put(path, json=good)).status_code == 403


async def test_scenario_rule_and_push(emu: Emulator, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    emu.add_rule(
        Rule(
            match="SpeechRecognizer.Recognize",
            times=1,
            directives=(
                DirectiveSpec("SpeechSynthesizer", "Speak", speech="What would you like?"),
                DirectiveSpec("SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": 8000}),
            ),
            push=(
                DirectiveSpec(
                    "Alerts",
                    "SetAlert",
                    {"token": "t1", "type": "TIMER", "scheduledTime": "+2s"},
                    after_s=0.05,
                ),
            ),
        )
    )
    async with open_downchannel(client, auth) as dc:
        await emu.wait_for_downchannel()
        body = (
            metadata_part(recognize_json("CLOSE_TALK", "d-9")) + audio_part_header() + bytes(640) + closing()
        )
        reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)
        assert reply.status_code == 200
        parts = parse_multipart(reply.headers["content-type"], reply.content)
        names = [
            json.loads(d)["directive"]["header"]["name"] for h, d in parts if "json" in h["content-type"]
        ]
        assert names == ["Speak", "ExpectSpeech"]
        assert parts[-1][0]["content-type"] == "application/octet-stream"  # attachment after the JSON parts
        pushed = await dc.next_directive()
        assert pushed["directive"]["header"]["name"] == "SetAlert"
        assert pushed["directive"]["payload"]["scheduledTime"].endswith("+0000")
        # times = 1: the next Recognize gets the default Speak.
        reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)
        names = [
            json.loads(d)["directive"]["header"]["name"]
            for h, d in parse_multipart(reply.headers["content-type"], reply.content)
            if "json" in h["content-type"]
        ]
        assert names == ["Speak"]


async def test_avs_routes_over_http11_answer_505(emu: Emulator) -> None:
    """AVS stays HTTP/2 only: an HTTP/1.1 client gets a clear 505 System.Exception, not a silent close."""
    ctx = ssl.create_default_context(cafile=str(emu.ca_file))
    ctx.set_alpn_protocols(["http/1.1"])
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port, ssl=ctx)
    try:
        writer.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 505 ")
    finally:
        writer.close()
    async with httpx.AsyncClient(http2=False, verify=ctx, base_url=emu.base_url, timeout=10.0) as h1:
        reply = await h1.get("/v20160207/directives", headers={"authorization": "Bearer x"})
        assert reply.http_version == "HTTP/1.1"
        assert reply.status_code == 505
        assert "requires HTTP/2" in reply.json()["payload"]["description"]


async def test_stop_leaves_no_tasks(tmp_path: object) -> None:
    before = asyncio.all_tasks()
    emu = Emulator()
    await emu.start()
    async with client_for(emu) as c:
        token = (
            await c.post(
                "/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": emu.refresh_token}
            )
        ).json()["access_token"]
        auth = {"authorization": f"Bearer {token}"}
        async with open_downchannel(c, auth):
            await emu.wait_for_downchannel()
            assert emu.open_connections == 1
            await emu.stop()
            assert emu.open_connections == 0
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert leftover == []


async def test_a_service_keeps_only_its_latest_requests(tmp_path: object) -> None:
    # `avsd run` with the offline assistant, vdevice and phone run this server for months: each Recognize record
    # holds its audio, so a server that kept them all grew without bound. Tests keep all (the default).
    from avsd.backends import Backend, open_backend
    from avsd.emulator.record import SERVICE_KEPT_RECORDS

    async with Emulator(accept_any_token=True, kept_records=3) as emu, client_for(emu) as c:
        for _ in range(5):
            assert (await c.get("/ping", headers={"authorization": "Bearer any"})).status_code == 204
        assert len(emu.records) == 3
        assert [r.stream_id for r in emu.records] == [5, 7, 9]  # the latest, in order
    async with open_backend(Backend.EMULATOR) as session:
        assert session.emulator is not None and session.emulator.kept_records == SERVICE_KEPT_RECORDS
