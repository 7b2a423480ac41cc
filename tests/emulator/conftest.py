"""Fixtures for the emulator tests: a running emulator on 127.0.0.1, an HTTP/2 client, a speech recording."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from avsd.avs.multipart import MultipartParser, PartData, PartEnd, PartStart, boundary_from_content_type
from avsd.emulator.server import Emulator

BOUNDARY = "test-boundary-1234"


@pytest.fixture
async def emu(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(cert_dir=tmp_path / "certs", goaway_grace_s=0.5) as emulator:
        yield emulator


def client_for(emulator: Emulator, **kwargs: Any) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(emulator.ca_file))
    return httpx.AsyncClient(http2=True, verify=ctx, base_url=emulator.base_url, timeout=10.0, **kwargs)


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(emu) as c:
        yield c


async def get_token(client: httpx.AsyncClient, emulator: Emulator) -> str:
    reply = await client.post(
        "/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": emulator.refresh_token}
    )
    assert reply.status_code == 200, reply.text
    token = reply.json()["access_token"]
    assert isinstance(token, str)
    return token


@pytest.fixture
async def auth(client: httpx.AsyncClient, emu: Emulator) -> dict[str, str]:
    return {"authorization": f"Bearer {await get_token(client, emu)}"}


def event_json(
    namespace: str,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    dialog_request_id: str | None = None,
    context: list[Any] | None = None,
) -> bytes:
    header: dict[str, Any] = {"namespace": namespace, "name": name, "messageId": f"m-{namespace}-{name}"}
    if dialog_request_id:
        header["dialogRequestId"] = dialog_request_id
    doc: dict[str, Any] = {"event": {"header": header, "payload": payload or {}}}
    if context is not None:
        doc["context"] = context
    return json.dumps(doc).encode()


def metadata_part(event: bytes, name: str = "metadata") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        "Content-Type: application/json; charset=UTF-8\r\n\r\n"
    ).encode() + event


def audio_part_header() -> bytes:
    return (
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def closing() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def multipart_headers(auth: dict[str, str]) -> dict[str, str]:
    return {**auth, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def recognize_json(profile: str = "NEAR_FIELD", dialog_request_id: str = "dialog-1") -> bytes:
    return event_json(
        "SpeechRecognizer",
        "Recognize",
        {"profile": profile, "format": "AUDIO_L16_RATE_16000_CHANNELS_1"},
        dialog_request_id=dialog_request_id,
        context=[],
    )


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Whole-body parse of a response: [(headers lowercased, data)]."""
    parser = MultipartParser(boundary_from_content_type(content_type))
    parts: list[tuple[dict[str, str], bytes]] = []
    current: tuple[dict[str, str], bytearray] | None = None
    for ev in [*parser.feed(body), *parser.finish()]:
        if isinstance(ev, PartStart):
            current = ({k.lower(): v for k, v in ev.headers.items}, bytearray())
        elif isinstance(ev, PartData) and current is not None:
            current[1].extend(ev.data)
        elif isinstance(ev, PartEnd) and current is not None:
            parts.append((current[0], bytes(current[1])))
            current = None
    return parts


class DownchannelReader:
    """Reads the downchannel in a task and queues each complete part as (headers, data)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = MultipartParser(boundary_from_content_type(response.headers["content-type"]))
        self.parts: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue(maxsize=100)
        self.raw = bytearray()
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        current: tuple[dict[str, str], bytearray] | None = None
        try:
            async for chunk in self.response.aiter_raw():
                self.raw += chunk
                for ev in self.parser.feed(chunk):
                    if isinstance(ev, PartStart):
                        current = ({k.lower(): v for k, v in ev.headers.items}, bytearray())
                    elif isinstance(ev, PartData) and current is not None:
                        current[1].extend(ev.data)
                    elif isinstance(ev, PartEnd) and current is not None:
                        if current[0]:  # the empty part of a clean close carries nothing
                            await self.parts.put((current[0], bytes(current[1])))
                        current = None
        except Exception as exc:
            self.error = exc
        finally:
            self.ended.set()

    async def next_directive(self, seconds: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            headers, data = await self.parts.get()
        assert "json" in headers["content-type"]
        doc = json.loads(data)
        assert isinstance(doc, dict)
        return doc

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def open_downchannel(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> AsyncIterator[DownchannelReader]:
    async with client.stream("GET", "/v20160207/directives", headers=auth) as response:
        assert response.status_code == 200
        reader = DownchannelReader(response)
        try:
            yield reader
        finally:
            await reader.close()


async def assert_healthy(emulator: Emulator) -> None:
    """A fresh connection gets a token and a 204 ping: the server survived whatever the test did."""
    async with client_for(emulator) as fresh:
        token = await get_token(fresh, emulator)
        reply = await fresh.get("/ping", headers={"authorization": f"Bearer {token}"})
        assert reply.status_code == 204


@pytest.fixture(scope="session")
def speech_pcm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    """'what time is it' (espeak-ng) as 16 kHz S16_LE mono with 1 s of silence after, via sox."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed to make the speech fixture")
    work = tmp_path_factory.mktemp("speech")
    wav, raw = work / "speech.wav", work / "speech.raw"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), "what time is it"], check=True, timeout=30)
    subprocess.run(
        [
            "sox",
            str(wav),
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            str(raw),
            "pad",
            "0.3",
            "1.0",
        ],
        check=True,
        timeout=30,
    )
    yield raw.read_bytes()
