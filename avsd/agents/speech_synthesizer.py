"""SpeechSynthesizer 1.0 (protocol reference §6.2): plays Speak attachments while they arrive.

- Speak is blocking in its dialog: ``handle`` returns when the speech has ended, so an ExpectSpeech after it
  waits (the sequencer orders that).
- ``SpeechStarted`` when the first sample leaves the player, ``SpeechFinished`` on a natural end.
- Interrupted speech (barge-in, stop, a new dialog) stops at once and, as the 1.0 SDK does, sends no
  SpeechFinished; the context then reports ``FINISHED`` with the offset where it stopped.
- A playback failure raises, so the sequencer reports ``ExceptionEncountered`` INTERNAL_ERROR.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any, Protocol

from avsd.agents.events import EventSender
from avsd.avs.attachments import AttachmentStore, content_id_from_url
from avsd.avs.messages import Directive, Event, context_entry
from avsd.errors import DirectiveParseError, PlaybackError
from avsd.observers import Observers
from avsd.playback.base import Media, Playback, PlaybackOutcome, Player

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "SpeechSynthesizer"


class SpeechFocus(Protocol):
    """Holds the DIALOG channel around a Speak (:class:`avsd.agents.focus_agent.DialogFocus`), so music pauses
    before the speech starts, also for a cloud-initiated Speak that arrives while the dialog is IDLE (§7.2)."""

    def speech_starting(self) -> None: ...

    def speech_ended(self) -> None: ...


class SpeechSynthesizer:
    def __init__(
        self,
        *,
        player: Player,
        attachments: AttachmentStore,
        events: EventSender,
        focus: SpeechFocus | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        self._player = player
        self._attachments = attachments
        self._events = events
        self._start_timeout_s = start_timeout_s
        self.focus = focus
        # observer(True) when the first sample is out, observer(False) when the speech ends (the dialog controller:
        # speech drives the SPEAKING state and the wake-word gate).
        self.observers: Observers[bool] = Observers("speech")
        self._playback: Playback | None = None
        self._token = ""
        self._playing = False
        self._last_offset_ms = 0

    # ----- DirectiveHandler ---------------------------------------------------------------------------------

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, "Speak")}

    def blocking(self, directive: Directive) -> bool:
        return True

    async def handle(self, directive: Directive) -> None:
        payload = directive.payload
        token, url = payload.get("token"), payload.get("url")
        if not isinstance(token, str) or not isinstance(url, str):
            raise DirectiveParseError("Speak needs string 'token' and 'url'", directive.raw)
        content_id = content_id_from_url(url)
        if not content_id:
            raise DirectiveParseError(f"Speak url must be a cid: attachment, got {url[:60]!r}", directive.raw)
        self._token = token
        self._last_offset_ms = 0
        if self.focus is not None:
            self.focus.speech_starting()
        try:
            playback = self._player.play(Media.stream(self._attachments.get(content_id)))
        except BaseException:
            if self.focus is not None:
                self.focus.speech_ended()
            raise
        self._playback = playback
        try:
            try:
                async with asyncio.timeout(self._start_timeout_s):
                    await playback.started()
            except TimeoutError:
                await playback.stop()
                raise PlaybackError(
                    f"Speak audio did not start within {self._start_timeout_s:.0f} s"
                ) from None
            self._playing = True
            self._events.send(Event.new(NAMESPACE, "SpeechStarted", {"token": token}))
            self.observers.notify(True)
            outcome = await playback.finished()
        finally:
            self._last_offset_ms = playback.offset_ms
            was_playing, self._playing, self._playback = self._playing, False, None
            if was_playing:
                self.observers.notify(False)
            if self.focus is not None:
                self.focus.speech_ended()
        if outcome is PlaybackOutcome.FINISHED:
            self._events.send(Event.new(NAMESPACE, "SpeechFinished", {"token": token}))
        elif outcome is PlaybackOutcome.FAILED:
            raise PlaybackError("Speak playback failed")
        else:
            _LOGGER.info("speech interrupted at %d ms", self._last_offset_ms)

    async def cancel(self, directive: Directive) -> None:
        await self.stop()

    # ----- control ------------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Barge-in or stop: end the current speech now."""
        playback = self._playback
        if playback is not None:
            await playback.stop()

    @property
    def speaking(self) -> bool:
        return self._playing

    def context(self) -> dict[str, Any]:
        playback = self._playback
        playing = self._playing and playback is not None
        return context_entry(
            NAMESPACE,
            "SpeechState",
            {
                "token": self._token,
                "offsetInMilliseconds": playback.offset_ms if playing and playback else self._last_offset_ms,
                "playerActivity": "PLAYING" if playing else "FINISHED",
            },
        )
