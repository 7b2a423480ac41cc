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
import pytest

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


def _espeak_16k(text: str, voice: str = "en-us") -> bytes:
    """What the virtual device sends: espeak-ng at its own rate, resampled, no leading silence."""
    from avsd.speech.convert import resample
    from avsd.speech.tts import espeak_pcm

    return resample(espeak_pcm(text, voice=voice), 16000).data


@pytest.mark.parametrize(
    ("profile", "answer", "voice", "minutes"),
    # Heard as "... eighty please" / "... eight minutes" when the cepstral mean was live (not the utterance's own).
    [("CLOSE_TALK", "ten minutes", "en-us", 10), ("PRESS_AND_HOLD", "five minutes", "en-us+f3", 5)],
)
async def test_a_short_answer_to_the_question_completes_the_timer(
    tmp_path: Path, profile: str, answer: str, voice: str, minutes: int
) -> None:
    # CLOSE_TALK / PRESS_AND_HOLD: no StopCapture, the end of the upload is the end of speech.
    brain = AssistantBrain()
    async with Emulator(cert_dir=tmp_path / "c", brain=brain) as emu, client_for(emu) as client:
        auth = {"authorization": f"Bearer {await get_token(client, emu)}"}

        async def recognize(pcm: bytes, initiator: dict[str, Any] | None, dialog: str) -> list[dict[str, Any]]:
            doc = json.loads(recognize_json(profile, dialog))
            if initiator is not None:
                doc["event"]["payload"]["initiator"] = initiator
            body = metadata_part(json.dumps(doc).encode()) + audio_part_header() + pcm + closing()
            async with asyncio.timeout(30):
                reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)
            assert reply.status_code == 200
            parts = parse_multipart(reply.headers["content-type"], reply.content)
            return [json.loads(data)["directive"] for headers, data in parts if "json" in headers["content-type"]]

        first = await recognize(_espeak_16k("set a timer"), None, "dialog-1")
        expect = next(d for d in first if d["header"]["name"] == "ExpectSpeech")
        assert first[0]["payload"]["caption"]["content"].endswith("For how long?")
        second = await recognize(_espeak_16k(answer, voice), expect["payload"]["initiator"], "dialog-2")
    assert [t.text for t in brain.turns] == ["set a timer", answer]
    set_alert = next(d for d in second if d["header"]["name"] == "SetAlert")
    assert set_alert["payload"]["type"] == "TIMER"
    assert second[0]["payload"]["caption"]["content"].endswith(f"Timer set for {minutes} minutes.")
