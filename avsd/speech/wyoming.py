"""Wyoming clients: speech-to-text and text-to-speech on a server chosen by one URL (``tcp://host:port``,
``unix:///path``), e.g. Home Assistant's faster-whisper (ASR) and Piper (TTS) add-ons.

ASR: ``transcribe``, ``audio-start``, ``audio-chunk``s while the Recognize uploads, ``audio-stop``; the server
answers ``transcript``. TTS: ``synthesize`` -> ``audio-start``, ``audio-chunk``s, ``audio-stop`` (PCM at the
server's rate), encoded to MP3 here for the Speak attachment. Connection and protocol errors are mapped to
:class:`WyomingError` here (the one boundary for this dependency); a failed ASR turn yields an empty transcript
(the brain then answers "I didn't hear anything"), a failed TTS falls back to espeak-ng.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.tts import Synthesize, SynthesizeVoice

from avsd.speech.stt import SAMPLE_RATE, Transcript
from avsd.speech.tts import EspeakTts, encode_mp3

_log = logging.getLogger(__name__)

_CHUNK_BYTES = 2048  # what Home Assistant sends


class WyomingError(Exception):
    """The Wyoming server is unreachable or answered something unexpected."""


def _client(url: str) -> AsyncClient:
    if not url.startswith(("tcp://", "unix://", "stdio://")):
        raise WyomingError(f"not a Wyoming URL (tcp://host:port or unix:///path): {url!r}")
    return AsyncClient.from_uri(url)


class WyomingAsr:
    """A Recognizer (see avsd.assistant.brain) backed by a Wyoming ASR server."""

    def __init__(self, url: str, *, language: str | None = "en", timeout_s: float = 15.0) -> None:
        _client(url)  # validate now: a bad URL is a config error, not a failed turn
        self.url = url
        self.language = language
        self.timeout_s = timeout_s

    def recognition(self, grammar: str | None = None) -> WyomingRecognition:
        return WyomingRecognition(self)


class WyomingRecognition:
    """Streams audio to the server while it arrives; ``finish`` sends audio-stop and awaits the transcript."""

    def __init__(self, asr: WyomingAsr) -> None:
        self._asr = asr
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1000)
        self._task: asyncio.Task[Transcript] | None = None

    def feed(self, pcm: bytes) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wyoming-asr")
        with contextlib.suppress(asyncio.QueueFull):  # 1000 chunks is minutes of audio: drop the excess
            self._queue.put_nowait(pcm)

    def finish(self) -> asyncio.Future[Transcript]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wyoming-asr")
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        return self._task

    async def _run(self) -> Transcript:
        start = time.monotonic()
        try:
            async with asyncio.timeout(self._asr.timeout_s):
                return await self._exchange()
        except (OSError, TimeoutError, WyomingError, ValueError) as exc:
            _log.warning("wyoming ASR %s failed after %.1f s: %s", self._asr.url, time.monotonic() - start, exc)
            return Transcript("")

    async def _exchange(self) -> Transcript:
        async with _client(self._asr.url) as client:
            await client.write_event(Transcribe(language=self._asr.language).event())
            await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
            pending = b""
            while (pcm := await self._queue.get()) is not None:
                pending += pcm
                while len(pending) >= _CHUNK_BYTES:
                    chunk, pending = pending[:_CHUNK_BYTES], pending[_CHUNK_BYTES:]
                    await client.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=chunk).event())
            if pending:
                await client.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=pending).event())
            await client.write_event(AudioStop().event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise WyomingError("connection closed before a transcript")
                if WyTranscript.is_type(event.type):
                    return Transcript(WyTranscript.from_event(event).text.strip())


class WyomingTts:
    """A SpeechSynthesizer backed by a Wyoming TTS server (MP3 made here); espeak-ng when the server fails."""

    def __init__(
        self, url: str, *, voice: str | None = None, fallback: EspeakTts | None = None, timeout_s: float = 15.0
    ) -> None:
        _client(url)
        self.url = url
        self.voice = voice
        self.fallback = fallback or EspeakTts()
        self.timeout_s = timeout_s
        self._cache: dict[str, bytes] = {}

    async def mp3(self, text: str) -> bytes:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        try:
            async with asyncio.timeout(self.timeout_s):
                pcm, rate, channels = await self.pcm(text)
        except (OSError, TimeoutError, WyomingError, ValueError) as exc:
            _log.warning("wyoming TTS %s failed: %s; using espeak-ng", self.url, exc)
            return await self.fallback.mp3(text)
        mp3 = await asyncio.to_thread(encode_mp3, pcm, rate, channels)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[text] = mp3
        return mp3

    async def pcm(self, text: str) -> tuple[bytes, int, int]:
        voice = SynthesizeVoice(name=self.voice) if self.voice else None
        async with _client(self.url) as client:
            await client.write_event(Synthesize(text=text, voice=voice).event())
            audio = bytearray()
            rate, width, channels = 0, 2, 1
            while True:
                event = await client.read_event()
                if event is None:
                    raise WyomingError("connection closed before audio-stop")
                if AudioStart.is_type(event.type):
                    start = AudioStart.from_event(event)
                    rate, width, channels = start.rate, start.width, start.channels
                elif AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    rate, width, channels = chunk.rate, chunk.width, chunk.channels
                    audio += chunk.audio
                elif AudioStop.is_type(event.type):
                    break
        if width != 2 or rate <= 0:
            raise WyomingError(f"unsupported TTS audio: {8 * width}-bit at {rate} Hz")
        return bytes(audio), rate, channels
