"""The brain seam of the local AVS server, over real HTTP/2 with httpx: the assistant answers a Recognize
(captioned Speak, directives in order); malformed uploads and a failing brain never take the server down, and
an abandoned upload gives its recogniser back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from avsd.assistant.brain import AssistantBrain
from avsd.emulator.brains import Answer, Turn
from avsd.emulator.server import Emulator
from avsd.speech.stt import PocketsphinxModel
from tests.emulator.conftest import (
    assert_healthy,
    audio_part_header,
    client_for,
    closing,
    get_token,
    metadata_part,
    multipart_headers,
    parse_multipart,
    recognize_json,
    speech_pcm,
)

__all__ = ["speech_pcm"]  # the session fixture: 'what time is it' via espeak-ng and sox


async def test_assistant_answers_a_recognize_over_http2(tmp_path: Path, speech_pcm: bytes) -> None:
    brain = AssistantBrain()
    async with Emulator(cert_dir=tmp_path / "c", brain=brain) as emu, client_for(emu) as client:
        auth = {"authorization": f"Bearer {await get_token(client, emu)}"}
        body = metadata_part(recognize_json("CLOSE_TALK")) + audio_part_header() + speech_pcm + closing()
        reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)
    assert reply.status_code == 200
    parts = parse_multipart(reply.headers["content-type"], reply.content)
    speak = json.loads(parts[0][1])["directive"]
    assert speak["header"]["name"] == "Speak" and speak["header"]["dialogRequestId"] == "dialog-1"
    assert speak["payload"]["caption"]["content"].startswith("WEBVTT\n\n1\n00:00:00.000 --> ")
    assert speak["payload"]["caption"]["content"].rsplit("\n", 1)[-1].startswith("It is ")
    assert speak["payload"]["format"] == "AUDIO_MPEG" and speak["payload"]["url"].startswith("cid:")
    assert parts[1][1][:3] == b"ID3" or parts[1][1][0] == 0xFF  # the MP3 attachment
    assert brain.turns[-1].text == "what time is it"


async def test_malformed_upload_frees_the_recogniser_and_the_server_lives(tmp_path: Path) -> None:
    brain = AssistantBrain()
    assert isinstance(brain.recognizer, PocketsphinxModel)
    async with Emulator(cert_dir=tmp_path / "c", brain=brain) as emu, client_for(emu) as client:
        auth = {"authorization": f"Bearer {await get_token(client, emu)}"}
        truncated = metadata_part(recognize_json("CLOSE_TALK")) + audio_part_header() + bytes(6400)  # no closing
        try:
            reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=truncated)
        except httpx.RemoteProtocolError as exc:  # early 200 headers, then RST_STREAM: refused
            assert "StreamReset" in str(exc)
        else:
            assert reply.status_code == 400
        await assert_healthy(emu)
        async with asyncio.timeout(10):
            while len(brain.recognizer._pool) != 1:  # the decoder came back to the pool
                await asyncio.sleep(0.02)


class BrokenBrain:
    def recognize(self, event: Mapping[str, Any]) -> Turn:
        raise RuntimeError("a bug in a brain")

    async def on_event(self, event: Mapping[str, Any]) -> Answer:
        raise RuntimeError("another bug")

    async def speech(self, text: str) -> bytes:
        return b""


async def test_a_failing_brain_costs_one_answer_not_the_server(tmp_path: Path) -> None:
    async with Emulator(cert_dir=tmp_path / "c", brain=BrokenBrain()) as emu, client_for(emu) as client:
        auth = {"authorization": f"Bearer {await get_token(client, emu)}"}
        body = metadata_part(recognize_json("CLOSE_TALK")) + closing()
        reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)
        assert reply.status_code == 200 and parse_multipart(reply.headers["content-type"], reply.content) == []
        await assert_healthy(emu)
