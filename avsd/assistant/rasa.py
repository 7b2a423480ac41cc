"""A brain for people who already have a chatbot: recognised text -> Rasa's REST channel -> spoken answers.

``POST <rasa_url>/webhooks/rest/webhook`` with ``{"sender": <device>, "message": <text>}``; Rasa answers a JSON
list of messages, each possibly with ``"text"`` (others carry images/buttons, which a speaker cannot show and are
skipped). Each text becomes a Speak with its caption, in order. httpx errors are mapped here, at this brain's one
boundary: the user hears a sentence saying the bot is unreachable, the server carries on.

Speech recognition is free text (the bot's vocabulary is unknown): a Wyoming ASR if configured, else
pocketsphinx with its full language model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from avsd.assistant.brain import Recognizer, TurnRecord, caption, wake_word_end
from avsd.emulator.brains import Answer, Turn
from avsd.emulator.scenario import DirectiveSpec
from avsd.speech.stt import Transcript
from avsd.speech.tts import SpeechSynthesizer

_log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/rest/webhook"
UNREACHABLE = "Sorry, I cannot reach the chatbot right now."
NOT_HEARD = "Sorry, I didn't hear anything."


class RasaError(Exception):
    """The bot did not answer with a list of messages."""


class RasaClient:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + WEBHOOK_PATH
        self.timeout_s = timeout_s

    async def ask(self, sender: str, message: str) -> list[str]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.url, json={"sender": sender, "message": message})
                response.raise_for_status()
                doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaError(f"{self.url}: {exc}") from exc
        if not isinstance(doc, list):
            raise RasaError(f"{self.url}: expected a JSON list of messages")
        return [m["text"] for m in doc if isinstance(m, Mapping) and isinstance(m.get("text"), str) and m["text"]]


class RasaBrain:
    def __init__(
        self, client: RasaClient, *, recognizer: Recognizer, tts: SpeechSynthesizer, sender: str = "avsd"
    ) -> None:
        self.client = client
        self.recognizer = recognizer
        self.tts = tts
        self.sender = sender
        self.turns: list[TurnRecord] = []

    def recognize(self, event: Mapping[str, Any]) -> Turn:
        return _RasaTurn(self, event)

    async def on_event(self, event: Mapping[str, Any]) -> Answer:
        return Answer()

    async def speech(self, text: str) -> bytes:
        return await self.tts.mp3(text)

    async def reply(self, text: str) -> Answer:
        if not text.strip():
            texts = [NOT_HEARD]
        else:
            try:
                texts = await self.client.ask(self.sender, text)
            except RasaError as exc:
                _log.warning("rasa: %s", exc)
                texts = [UNREACHABLE]
        self.turns.append(TurnRecord(text, "rasa", " ".join(texts), time.monotonic(), 0.0))
        del self.turns[:-50]
        specs = tuple(
            DirectiveSpec("SpeechSynthesizer", "Speak", {"caption": caption(t, len(t.split()) * 0.4)}, speech=t)
            for t in texts
        )
        for t in texts:
            await self.speech(t)  # synthesise before answering
        return Answer(specs)


class _RasaTurn:
    def __init__(self, brain: RasaBrain, event: Mapping[str, Any]) -> None:
        self.brain = brain
        self.recognition = brain.recognizer.recognition()
        self._skip = 2 * wake_word_end(event)
        self._task: asyncio.Task[Answer] | None = None

    def feed(self, pcm: bytes) -> None:
        if self._skip >= len(pcm):
            self._skip -= len(pcm)
            return
        pcm, self._skip = pcm[self._skip :], 0
        self.recognition.feed(pcm)

    def end_of_speech(self) -> None:
        self._start()

    def _start(self) -> asyncio.Task[Answer]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._compute(), name="rasa-turn")
        return self._task

    async def _compute(self) -> Answer:
        try:
            async with asyncio.timeout(10.0):
                transcript = await self.recognition.finish()
        except TimeoutError:
            transcript = Transcript("")
        _log.info("rasa: heard %r", transcript.text)
        return await self.brain.reply(transcript.text)

    async def answer(self) -> Answer:
        return await self._start()
