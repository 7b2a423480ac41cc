"""One Virtual Device message: text or audio in -> Recognize on a headless session -> a Bespoken result.

    text --TTS--> 16 kHz PCM --Recognize--> back-end --Speak MP3 / cards / Play--> STT --> transcript

``result_from_reply`` is pure (directives in, the result's fields out) and holds the protocol knowledge:
``caption`` from the Speak's caption (or its text), ``card`` from TemplateRuntime.RenderTemplate (AVS field names:
``mainTitle``, ``textField``, the largest image as ``imageURL``), ``streamURL`` from AudioPlayer.Play,
``sessionTimeout`` (seconds) from SpeechRecognizer.ExpectSpeech.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from avsd.vdevice import audio_in
from avsd.vdevice.homophones import Homophones, apply_homophones

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceReply:
    """What a back-end answered to one Recognize: its directives (AVS JSON) and the Speak audio, in order."""

    directives: Sequence[Mapping[str, Any]]
    speech_mp3: Sequence[bytes] = ()
    speech_pcm: bytes = b""  # the Speak audio decoded to 16 kHz mono, for STT
    think_s: float = 0.0  # request start -> last directive: the back-end's own time


class DeviceSessions(Protocol):
    """Headless sessions, one per device identity (a token)."""

    async def ask(self, identity: str, pcm16k: bytes) -> DeviceReply: ...

    async def reset(self, identity: str) -> None:
        """Forget any open dialog (a new conversation)."""


class SpeechEngines(Protocol):
    async def synthesize(self, text: str, voice: str | None) -> bytes:
        """Text -> 16 kHz mono 16-bit PCM."""

    async def transcribe(self, pcm16k: bytes, phrases: Sequence[str]) -> str:
        """16 kHz mono 16-bit PCM -> text, with phrase hints."""


class AudioUrls(Protocol):
    async def publish(self, content_type: str, data: bytes) -> str:
        """Keep ``data`` and return a URL a test runner can fetch it from."""


class MessageError(Exception):
    """A message the API refuses: ``status`` and ``body`` are what the client gets (Bespoken's shapes)."""

    def __init__(self, status: int, body: str | dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class Message:
    """One utterance to say: text, or audio with its format."""

    text: str = ""
    audio: bytes = b""
    format: str = "raw"
    frame_rate: int = audio_in.TARGET_RATE
    channels: int = 1
    sample_width: int = 2
    phrases: Sequence[str] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Options:
    voice_id: str | None = None
    skip_stt: bool = False
    debug: bool = False
    homophones: Homophones = ()


class MessageProcessor:
    def __init__(self, sessions: DeviceSessions, speech: SpeechEngines, urls: AudioUrls) -> None:
        self._sessions = sessions
        self._speech = speech
        self._urls = urls

    async def process(self, identity: str, message: Message, options: Options) -> dict[str, Any]:
        started = time.perf_counter()
        pcm = await self._utterance_pcm(message, options)
        tts_s = time.perf_counter() - started
        reply = await self._sessions.ask(identity, pcm)
        asked_s = time.perf_counter() - started - tts_s
        transcript = ""
        if reply.speech_pcm and not options.skip_stt:
            transcript = await self._speech.transcribe(reply.speech_pcm, message.phrases)
        stt_s = time.perf_counter() - started - tts_s - asked_s
        result = result_from_reply(message.text, reply)
        result["transcript"] = apply_homophones(transcript, options.homophones) if transcript else transcript
        result["utteranceURL"] = await self._urls.publish("audio/wav", audio_in.pcm_to_wav(pcm))
        mp3 = b"".join(reply.speech_mp3)
        if mp3:
            result["transcriptAudioURL"] = await self._urls.publish("audio/mpeg", mp3)
        result["debug"] = {"rawTranscript": transcript}
        if options.debug:
            result["debug"].update(
                {
                    "rawJSON": {"directives": list(reply.directives)},
                    "deviceInteractionDuration": round(asked_s, 3),
                    "ttsDuration": round(tts_s, 3),
                    "transcriptDuration": round(stt_s, 3),
                    "processDuration": round(time.perf_counter() - started, 3),
                    "backendThinkDuration": round(reply.think_s, 3),
                }
            )
        return result

    async def new_conversation(self, identity: str) -> None:
        await self._sessions.reset(identity)

    async def _utterance_pcm(self, message: Message, options: Options) -> bytes:
        if message.audio:
            try:
                return audio_in.to_pcm16k(
                    message.audio,
                    message.format,
                    frame_rate=message.frame_rate,
                    channels=message.channels,
                    sample_width=message.sample_width,
                )
            except audio_in.AudioFormatError as exc:
                raise MessageError(400, {"error": "Invalid format in message"}) from exc
            except audio_in.AudioDecodeError as exc:
                raise MessageError(400, {"error": "Error processing audio"}) from exc
        if not message.text.strip():
            raise MessageError(400, "Invalid message")
        return await self._speech.synthesize(message.text, options.voice_id)


def result_from_reply(message: str, reply: DeviceReply) -> dict[str, Any]:
    """The Bespoken result fields that come from the directives alone (pure)."""
    captions: list[str] = []
    card: dict[str, Any] | None = None
    display: dict[str, Any] = {}
    stream_url: str | None = None
    session_timeout = 0
    for directive in reply.directives:
        header = directive.get("header", {})
        payload = directive.get("payload", {}) or {}
        name = f"{header.get('namespace')}.{header.get('name')}"
        if name == "SpeechSynthesizer.Speak":
            caption = payload.get("caption")
            text = caption.get("content") if isinstance(caption, Mapping) else None
            text = text or payload.get("text") or payload.get("displayText")
            if text:
                captions.append(_caption_text(str(text)))
        elif name == "TemplateRuntime.RenderTemplate":
            card = card_from_template(payload)
            display = dict(payload)
        elif name == "TemplateRuntime.RenderPlayerInfo":
            display = dict(payload)
        elif name == "AudioPlayer.Play" and stream_url is None:
            stream = payload.get("audioItem", {}).get("stream", {})
            stream_url = stream.get("url") or None
        elif name == "SpeechRecognizer.ExpectSpeech":
            session_timeout = int(payload.get("timeoutInMilliseconds", 8000)) // 1000
    result: dict[str, Any] = {
        "message": message,
        "card": card,  # documented as null when there is none
        "display": display,
        "sessionTimeout": session_timeout,
        "raw": {"messageBody": {"directives": [dict(d) for d in reply.directives]}},
    }
    # Absent, not null: bst's "streamURL: undefined" is JavaScript's ``=== undefined``, which null fails.
    if captions:
        result["caption"] = " ".join(captions)
    if stream_url is not None:
        result["streamURL"] = stream_url
    return result


def card_from_template(payload: Mapping[str, Any]) -> dict[str, Any]:
    title = payload.get("title") or {}
    return {
        "mainTitle": title.get("mainTitle") if isinstance(title, Mapping) else str(title),
        "subTitle": title.get("subTitle") if isinstance(title, Mapping) else None,
        "textField": payload.get("textField"),
        "type": payload.get("type"),
        "imageURL": _largest_image(payload.get("image")),
    }


_SIZE_ORDER = {"X-SMALL": 0, "SMALL": 1, "MEDIUM": 2, "LARGE": 3, "X-LARGE": 4}


def _largest_image(image: Any) -> str | None:
    if not isinstance(image, Mapping):
        return None
    sources = [s for s in image.get("sources", []) if isinstance(s, Mapping) and s.get("url")]
    if not sources:
        return None

    def size(source: Mapping[str, Any]) -> tuple[int, int]:
        return (_SIZE_ORDER.get(str(source.get("size", "")).upper(), -1), int(source.get("widthPixels") or 0))

    return str(max(sources, key=size)["url"])


def _caption_text(caption: str) -> str:
    """WebVTT captions (``WEBVTT`` + cues) -> the spoken text; plain text stays as it is."""
    if not caption.startswith("WEBVTT"):
        return caption.strip()
    lines = [ln.strip() for ln in caption.splitlines()[1:]]
    words = [ln for ln in lines if ln and "-->" not in ln and not ln.isdigit()]
    return " ".join(words)


def new_id() -> str:
    return secrets.token_urlsafe(18)
