"""One Recognize: its settings, its event (§6.1) and its audio (pre-roll, then live frames), and the parts of the
audio path the composition root builds (:class:`VoicePipeline`). Used by :mod:`avsd.dialog`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avsd.audio.endpointer import EndpointerSettings
from avsd.audio.frames import FRAME_BYTES
from avsd.audio.opus import BITRATES, OPUS_FORMAT
from avsd.avs.messages import Event
from avsd.state import DialogTimeouts
from avsd.wake.base import WakeEngine

_LOGGER = logging.getLogger(__name__)

PCM_FORMAT = "AUDIO_L16_RATE_16000_CHANNELS_1"
_CAPTURE_QUEUE_FRAMES = 2000  # 20 s: more than the hard cap, so a slow network never drops captured audio


class Initiator(StrEnum):
    WAKEWORD = "WAKEWORD"
    TAP = "TAP"
    PRESS_AND_HOLD = "PRESS_AND_HOLD"
    EXPECT_SPEECH = "EXPECT_SPEECH"  # local name: the Recognize echoes ExpectSpeech's initiator


@dataclass(frozen=True, slots=True)
class DialogSettings:
    wake_profile: str = field(
        default="NEAR_FIELD",
        metadata={"help": "ASR profile for wake-word dialogs", "choices": ("NEAR_FIELD", "FAR_FIELD")},
    )
    tap_endpointing: str = field(
        default="local",
        metadata={
            "help": "TAP dialogs end on local end of speech and StopCapture (local), or StopCapture only (cloud)",
            "choices": ("local", "cloud"),
        },
    )
    preroll_s: float = field(
        default=0.5, metadata={"help": "audio sent before the wake word (AVS wants 500 ms)", "min": 0.0, "max": 1.5}
    )
    expect_preroll_s: float = field(
        default=0.3, metadata={"help": "audio kept before the answer to an ExpectSpeech starts", "min": 0.0, "max": 1.0}
    )
    audio_format: str = field(
        default=PCM_FORMAT,
        metadata={
            "help": "Recognize audio: 16 kHz PCM (256 kbps) or Opus (needs libopus0 + opuslib-next)",
            "choices": (PCM_FORMAT, OPUS_FORMAT),
        },
    )
    opus_bitrate: int = field(
        default=32000,
        metadata={"help": "Opus bit rate (hard CBR: 80- or 160-byte packets per 20 ms)", "choices": BITRATES},
    )
    timeouts: DialogTimeouts = field(default_factory=DialogTimeouts)


def ring_seconds(settings: DialogSettings) -> float:
    """History the ring buffer keeps: the pre-roll plus the longest wake word, and never under 2.5 s."""
    return max(2.5, settings.preroll_s + 2.0)


@dataclass(frozen=True, slots=True)
class VoicePipeline:
    """What the audio path is made of. The composition root builds it (checking that OPUS can work, picking the
    wake-word engine) and a reload replaces it whole (:meth:`DialogController.use_pipeline`)."""

    settings: DialogSettings
    endpointing: EndpointerSettings
    engine: WakeEngine
    keyword: str = "ALEXA"


def recognize_event(
    *,
    dialog_request_id: str,
    initiator: Initiator,
    profile: str,
    wake_word_indices: tuple[int, int] | None = None,
    expect_initiator: Mapping[str, Any] | None = None,
    audio_format: str = PCM_FORMAT,
) -> Event:
    """``SpeechRecognizer.Recognize`` (§6.1). Pure."""
    payload: dict[str, Any] = {"profile": profile, "format": audio_format}
    if initiator is Initiator.EXPECT_SPEECH:
        if expect_initiator is not None:
            payload["initiator"] = dict(expect_initiator)  # verbatim, opaque
    elif initiator is Initiator.WAKEWORD:
        initiator_payload: dict[str, Any] = {}
        if wake_word_indices is not None:
            start, end = wake_word_indices
            initiator_payload["wakeWordIndices"] = {"startIndexInSamples": start, "endIndexInSamples": end}
        payload["initiator"] = {"type": "WAKEWORD", "payload": initiator_payload}
    else:
        payload["initiator"] = {"type": str(initiator), "payload": {}}
    return Event.new("SpeechRecognizer", "Recognize", payload, dialog_request_id=dialog_request_id)


class Capture:
    """One Recognize's audio: the pre-roll, then live frames until closed. Read once by the upload."""

    def __init__(self, preroll: bytes) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(_CAPTURE_QUEUE_FRAMES)
        self._preroll = preroll
        self.closed = False
        self.frames_sent = 0

    def push(self, frame: bytes) -> None:
        if not self.closed:
            try:
                self._queue.put_nowait(frame)
            except asyncio.QueueFull:  # only if the upload stalls for 20 s; the state timeout ends it anyway
                _LOGGER.warning("capture queue full; dropping a frame")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self._queue.put_nowait(None)

    async def frames(self) -> AsyncIterator[bytes]:
        preroll = self._preroll
        for offset in range(0, len(preroll) - FRAME_BYTES + 1, FRAME_BYTES):
            self.frames_sent += 1
            yield preroll[offset : offset + FRAME_BYTES]
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            self.frames_sent += 1
            yield frame


__all__ = ["PCM_FORMAT", "Capture", "DialogSettings", "Initiator", "VoicePipeline", "recognize_event", "ring_seconds"]
