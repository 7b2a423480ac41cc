"""The Rasa brain against a small Rasa-compatible server started in the test (the REST channel's shapes), and
through the local AVS server over real HTTP/2 with a real device pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from avsd.assistant.brain import create_brain
from avsd.assistant.rasa import UNREACHABLE, RasaBrain, RasaClient
from avsd.assistant.settings import AssistantSettings
from avsd.speech.stt import Transcript
from avsd.speech.tts import EspeakTts


class RasaStub:
    """``POST /webhooks/rest/webhook`` {"sender","message"} -> [{"recipient_id","text"} | {"image"}]."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        length = int(next(ln.split(":")[1] for ln in head.split("\r\n") if ln.lower().startswith("content-length")))
        body = json.loads(await reader.readexactly(length))
        status = "200 OK" if head.startswith("POST /webhooks/rest/webhook ") else "404 Not Found"
        self.requests.append(body)
        answer = [
            {"recipient_id": body["sender"], "text": f"You said: {body['message']}."},
            {"recipient_id": body["sender"], "image": "https://example.com/cat.png"},
            {"recipient_id": body["sender"], "text": "Anything else?"},
        ]
        data = json.dumps(answer).encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     "Connection: close\r\n\r\n".encode() + data)
        await writer.drain()
        writer.close()


@pytest.fixture
async def rasa() -> AsyncIterator[RasaStub]:
    stub = RasaStub()
    server = await asyncio.start_server(stub.serve, "127.0.0.1", 0)
    stub.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield stub


class FakeRecognition:
    def __init__(self, text: str) -> None:
        self.text = text
        self.fed = 0

    def feed(self, pcm: bytes) -> None:
        self.fed += len(pcm)

    def finish(self) -> asyncio.Future[Transcript]:
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        future.set_result(Transcript(self.text))
        return future


class FakeRecognizer:
    def __init__(self, text: str) -> None:
        self.last = FakeRecognition(text)

    def recognition(self, grammar: str | None = None) -> FakeRecognition:
        return self.last


async def test_texts_are_spoken_in_order_with_captions(rasa: RasaStub) -> None:
    brain = RasaBrain(RasaClient(rasa.url), recognizer=FakeRecognizer("hello bot"), tts=EspeakTts(), sender="dev1")
    turn = brain.recognize({"event": {"header": {}, "payload": {}}})
    turn.feed(bytes(3200))
    async with asyncio.timeout(20):
        answer = await turn.answer()
    assert rasa.requests == [{"sender": "dev1", "message": "hello bot"}]
    assert [d.speech for d in answer.directives] == ["You said: hello bot.", "Anything else?"]
    assert all(d.payload["caption"]["content"].endswith(d.speech or "") for d in answer.directives)


async def test_unreachable_bot_is_a_spoken_sentence() -> None:
    brain = RasaBrain(RasaClient("http://127.0.0.1:9"), recognizer=FakeRecognizer("hi"), tts=EspeakTts())
    async with asyncio.timeout(20):
        answer = await brain.recognize({}).answer()
    assert [d.speech for d in answer.directives] == [UNREACHABLE]


@pytest.mark.slow
async def test_device_talks_to_a_rasa_bot(tmp_path: Path, rasa: RasaStub) -> None:
    """espeak-ng speech -> the device -> the local AVS server -> pocketsphinx (free text) -> Rasa -> Speak."""
    from avsd.emulator.server import Emulator
    from tests.assistant.test_e2e import utterance
    from tests.harness import running_device

    brain = create_brain(AssistantSettings(rasa_url=rasa.url))
    assert isinstance(brain, RasaBrain)
    async with Emulator(cert_dir=tmp_path / "certs", brain=brain) as emu, running_device(
        tmp_path, emulator=emu
    ) as dev:
        await dev.source.feed(utterance("hello"))
        async with asyncio.timeout(60):
            while not any(d.header.name == "Speak" for d in dev.directives):
                await asyncio.sleep(0.05)
    assert len(rasa.requests) == 1 and rasa.requests[0]["sender"] == "avsd"
    speaks = [d for d in dev.directives if d.header.name == "Speak"]
    assert speaks[-1].payload["caption"]["content"].endswith("Anything else?")
