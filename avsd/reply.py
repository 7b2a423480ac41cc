"""What a headless ask returns: the reply's directives with their audio as received. Pure data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avsd.avs.attachments import content_id_from_url


class AudioFormat(StrEnum):
    PCM = "AUDIO_L16_RATE_16000_CHANNELS_1"
    OPUS = "OPUS"


class DistanceProfile(StrEnum):
    CLOSE_TALK = "CLOSE_TALK"  # 0-2.5 ft; the caller ends the audio (push-to-talk)
    NEAR_FIELD = "NEAR_FIELD"  # 0-5 ft; the cloud ends it (StopCapture)
    FAR_FIELD = "FAR_FIELD"  # 0-20+ ft; the cloud ends it (StopCapture)


@dataclass(frozen=True, slots=True)
class ReplyDirective:
    """One directive of a reply. ``audio_attachment``: the Speak/Play audio bytes as received (MP3), else None."""

    namespace: str
    name: str
    payload: Mapping[str, Any]
    dialog_request_id: str | None
    message_id: str
    audio_attachment: bytes | None = field(default=None, repr=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def directive(self) -> dict[str, Any]:
        """The directive as JSON (alexa_client's ``Directive.directive``)."""
        header: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "messageId": self.message_id}
        if self.dialog_request_id:
            header["dialogRequestId"] = self.dialog_request_id
        return {"header": header, "payload": dict(self.payload)}


@dataclass(frozen=True, slots=True)
class Reply:
    """What Alexa answered to one ask."""

    dialog_request_id: str
    status: int  # 200 with directives, 204 for "nothing to say"
    directives: tuple[ReplyDirective, ...]
    expect_speech: Mapping[str, Any] | None = None  # the ExpectSpeech payload: answer with the same dialog id
    first_audio_s: float | None = None  # request start -> first reply-audio byte, seconds
    audio_bytes_sent: int = 0

    @property
    def expects_speech(self) -> bool:
        return self.expect_speech is not None

    @property
    def speech(self) -> bytes:
        """Every Speak's MP3, in order, as received."""
        return b"".join(d.audio_attachment or b"" for d in self.directives if d.name == "Speak")

    @property
    def caption(self) -> str:
        """Speak captions (SpeechSynthesizer 1.3 ``caption.content``), joined."""
        texts = []
        for d in self.directives:
            caption = d.payload.get("caption") if d.name == "Speak" else None
            text = caption.get("content") if isinstance(caption, Mapping) else caption
            if isinstance(text, str) and text:
                texts.append(text)
        return "\n".join(texts)

    @property
    def card(self) -> Mapping[str, Any] | None:
        """The TemplateRuntime.RenderTemplate payload, if any."""
        for d in self.directives:
            if d.namespace == "TemplateRuntime" and d.name == "RenderTemplate":
                return d.payload
        return None

    @property
    def stream_url(self) -> str | None:
        """An AudioPlayer.Play stream that is a URL (not an attachment)."""
        for d in self.directives:
            if d.name == "Play":
                url = play_url(d.payload)
                if url and content_id_from_url(url) is None:
                    return url
        return None

    def summary(self) -> str:
        names = ", ".join(d.qualified_name for d in self.directives) or f"no directives ({self.status})"
        return names + (" (expects speech)" if self.expects_speech else "")


def play_url(payload: Mapping[str, Any]) -> str | None:
    item = payload.get("audioItem")
    stream = item.get("stream") if isinstance(item, Mapping) else None
    url = stream.get("url") if isinstance(stream, Mapping) else None
    return url if isinstance(url, str) else None
