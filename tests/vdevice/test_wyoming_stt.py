"""``assistant.stt_url`` set: the virtual device transcribes replies with that Wyoming ASR server (a server built
from wyoming's own classes, as Home Assistant's faster-whisper add-on is; pocketsphinx inside)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStop
from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncUnixServer

from avsd.speech.stt import PocketsphinxModel
from avsd.vdevice.service import default_speech

MODEL = PocketsphinxModel()
HEARD: list[int] = []


class FreeTextAsr(AsyncEventHandler):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.audio = bytearray()

    async def handle_event(self, event: Event) -> bool:
        if AudioChunk.is_type(event.type):
            self.audio += AudioChunk.from_event(event).audio
        elif AudioStop.is_type(event.type):
            HEARD.append(len(self.audio))
            text = (await asyncio.to_thread(MODEL.transcribe, bytes(self.audio))).text
            await self.write_event(Transcript(text=f"wyoming says {text}").event())
            return False
        return True


@pytest.fixture
async def asr(tmp_path: Path) -> AsyncIterator[str]:
    server = AsyncUnixServer(tmp_path / "asr.sock")
    await server.start(FreeTextAsr)  # type: ignore[attr-defined]
    try:
        yield f"unix://{tmp_path / 'asr.sock'}"
    finally:
        await server.stop()


@pytest.mark.timeout(60)
async def test_replies_go_to_the_configured_wyoming_asr(asr: str) -> None:
    speech = default_speech(stt_url=asr)
    reply = await speech.synthesize("how many players are there", None)
    transcript = await speech.transcribe(reply, ["how many players"])
    assert [len(reply)] == HEARD  # the whole reply reached the server
    assert transcript.startswith("wyoming says")
    assert "how many players" in transcript
