"""The local AVS server's brain seam: who answers a Recognize (and other events) when no scenario rule does.

The server (events.py) does the protocol: it parses the upload, runs cloud endpointing, sends headers, renders
directives and attachments. A brain only decides *what* to answer:

- :meth:`Brain.recognize` is called when a Recognize's JSON part arrived and returns a :class:`Turn`, which is
  fed the audio (PCM, 16 kHz) while it uploads, told when the server's endpointer heard the end of speech (the
  moment StopCapture is pushed: a brain may start answering then), and asked for its :class:`Answer`.
- :meth:`Brain.on_event` answers every other event (AudioPlayer, PlaybackController, Alerts, ...): no directives
  means ``204``.
- :meth:`Brain.speech` turns a Speak text into MP3 bytes (each brain picks its voice).

Scenario rules always come first; the scenario brain is what the emulator did before brains existed (a Speak
with the scenario's ``reply_text`` or the time). ``AssistantBrain`` (avsd/assistant/brain.py) and ``RasaBrain``
(avsd/assistant/rasa.py) are the others.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from avsd.emulator.replies import default_reply_text
from avsd.emulator.scenario import DirectiveSpec
from avsd.speech.tts import synthesize_mp3_async


@dataclass(frozen=True, slots=True)
class Answer:
    """Directives for the event's response, in order (JSON parts first, then their attachments)."""

    directives: tuple[DirectiveSpec, ...] = ()


class Turn(Protocol):
    def feed(self, pcm: bytes) -> None:
        """Audio as it arrives (16 kHz, 16-bit mono; OPUS uploads are decoded first). Must not block."""

    def end_of_speech(self) -> None:
        """The server's endpointer heard the end of speech (StopCapture goes out now)."""

    async def answer(self) -> Answer:
        """Called once the upload has ended."""
        ...


class Brain(Protocol):
    def recognize(self, event: Mapping[str, Any]) -> Turn: ...

    async def on_event(self, event: Mapping[str, Any]) -> Answer: ...

    async def speech(self, text: str) -> bytes: ...


class _ReplyTurn:
    def __init__(self, reply: Callable[[], Awaitable[Answer]]) -> None:
        self._reply = reply

    def feed(self, pcm: bytes) -> None:
        pass

    def end_of_speech(self) -> None:
        pass

    async def answer(self) -> Answer:
        return await self._reply()


class ScenarioBrain:
    """Today's emulator behaviour: every Recognize gets one Speak (the scenario's reply text, else the time)."""

    def __init__(self, reply_text: str | None = None) -> None:
        self.reply_text = reply_text

    def text(self) -> str:
        return self.reply_text or default_reply_text(datetime.datetime.now().astimezone())

    def recognize(self, event: Mapping[str, Any]) -> Turn:
        async def reply() -> Answer:
            return Answer((DirectiveSpec("SpeechSynthesizer", "Speak", speech=self.text()),))

        return _ReplyTurn(reply)

    async def on_event(self, event: Mapping[str, Any]) -> Answer:
        return Answer()

    async def speech(self, text: str) -> bytes:
        return await synthesize_mp3_async(text)
