"""Wyoming clients against a Wyoming server started in the test: wyoming's own server classes wrapping
pocketsphinx (ASR) and espeak-ng (TTS), over a unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncUnixServer
from wyoming.tts import Synthesize

from avsd.assistant.brain import create_brain
from avsd.assistant.grammar import Language
from avsd.assistant.settings import AssistantSettings
from avsd.speech import convert
from avsd.speech.stt import PocketsphinxModel
from avsd.speech.tts import espeak_pcm
from avsd.speech.wyoming import WyomingAsr, WyomingError, WyomingTts

LANG = Language.load()
MODEL = PocketsphinxModel(jsgf=LANG.jsgf(), words=LANG.vocabulary(), pronunciations=LANG.pronunciations)


class Handler(AsyncEventHandler):
    """What faster-whisper / Piper add-ons do, with pocketsphinx and espeak-ng inside."""

    seen: list[str] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.audio = bytearray()

    async def handle_event(self, event: Event) -> bool:
        Handler.seen.append(event.type)
        if AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (16000, 2, 1)
            self.audio += chunk.audio
        elif AudioStop.is_type(event.type):
            text = (await asyncio.to_thread(MODEL.transcribe, bytes(self.audio))).text
            await self.write_event(Transcript(text=text).event())
            return False
        elif Synthesize.is_type(event.type):
            pcm = await asyncio.to_thread(espeak_pcm, Synthesize.from_event(event).text)
            await self.write_event(AudioStart(rate=pcm.rate, width=2, channels=1).event())
            for offset in range(0, len(pcm.data), 2048):
                chunk = pcm.data[offset : offset + 2048]
                await self.write_event(AudioChunk(rate=pcm.rate, width=2, channels=1, audio=chunk).event())
            await self.write_event(AudioStop().event())
            return False
        return True


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    path = tmp_path / "wyoming.sock"
    srv = AsyncUnixServer(path)
    await srv.start(Handler)  # type: ignore[attr-defined]
    Handler.seen = []
    try:
        yield f"unix://{path}"
    finally:
        await srv.stop()


async def test_asr_streams_while_audio_arrives(server: str, say: Callable[..., bytes]) -> None:
    pcm = say("what time is it")
    recognition = WyomingAsr(server).recognition()
    for offset in range(0, len(pcm), 320):
        recognition.feed(pcm[offset : offset + 320])
        if offset % 3200 == 0:
            await asyncio.sleep(0)  # let the client stream, as the server's upload loop does
    async with asyncio.timeout(30):
        transcript = await recognition.finish()
    assert transcript.text == "what time is it"
    assert Handler.seen[:2] == [Transcribe().event().type, AudioStart(rate=16000, width=2, channels=1).event().type]
    assert Handler.seen[-1] == "audio-stop" and Handler.seen.count("audio-chunk") >= len(pcm) // 2048


async def test_tts_returns_decodable_mp3(server: str) -> None:
    async with asyncio.timeout(30):
        mp3 = await WyomingTts(server).mp3("It is eight fifteen.")
    decoded = convert.decode_mp3(mp3)
    assert decoded.seconds > 0.8


async def test_unreachable_servers_degrade(tmp_path: Path, say: Callable[..., bytes]) -> None:
    url = f"unix://{tmp_path / 'nobody.sock'}"
    recognition = WyomingAsr(url).recognition()
    recognition.feed(say("stop"))
    async with asyncio.timeout(10):
        assert (await recognition.finish()).text == ""  # -> the brain says it heard nothing
        mp3 = await WyomingTts(url).mp3("Hello.")  # -> espeak-ng
    assert convert.decode_mp3(mp3).seconds > 0.2
    with pytest.raises(WyomingError):
        WyomingAsr("http://example.com")


async def test_assistant_brain_with_wyoming_servers(server: str, say: Callable[..., bytes]) -> None:
    brain = create_brain(AssistantSettings(stt_url=server, tts_url=server))
    event = {"event": {"header": {"namespace": "SpeechRecognizer", "name": "Recognize"}, "payload": {}}}
    turn = brain.recognize(event)
    turn.feed(say("what can you do"))
    turn.end_of_speech()
    async with asyncio.timeout(30):
        answer = await turn.answer()
    speak = answer.directives[0]
    assert speak.qualified_name == "SpeechSynthesizer.Speak"
    assert speak.speech is not None and speak.speech.startswith("I can tell you the time")
