"""Notifications 1.0 (protocol reference §6.7): SetIndicator / ClearIndicator -> the LED indicator and a sound.

- ``SetIndicator``: if ``playAudioIndicator``, play the asset URL (a built-in chime when it is missing or fails);
  if ``persistVisualIndicator``, turn the indicator on. Sounds queue behind one another (bounded).
- ``ClearIndicator``: indicator off, queued sounds dropped, a sounding one stopped.
- The indicator is observable (:attr:`NotificationsAgent.indicator_on`, :meth:`add_observer`) for the LED layer
  (``LedInputs(notification_waiting=...)``) and survives a restart (``<state_dir>/notifications.json``, written
  atomically like the Speaker's state).
- Context ``IndicatorState``: ``isEnabled`` (an indicator is on or a notification is being rendered) and
  ``isVisualIndicatorPersisted`` (the visual indicator is on). No events.

The SDK handles these directives immediately (HANDLE_IMMEDIATELY): :meth:`handle` only records and queues; the
sound plays in the agent's own task so a ClearIndicator is never stuck behind it. The sound does not take audio
focus (SDK 1.x NotificationRenderer plays it on its own player).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import struct
import wave
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsd.agents.speaker import read_json_state
from avsd.avs.messages import Directive, context_entry
from avsd.errors import DirectiveParseError, PlaybackError
from avsd.fileio import StateFileWriter
from avsd.observers import Observers
from avsd.playback.base import Media, Playback, PlaybackOutcome, Player
from avsd.settings import setting

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "Notifications"
STATE_FILE = "notifications.json"


@dataclass(frozen=True, slots=True)
class NotificationsSettings:
    play_sound: bool = setting(True, "play the notification sound AVS asks for")
    sound_timeout_s: float = setting(
        5.0, "seconds the asset may take to start before the built-in chime plays", min=0.5, max=60.0
    )
    max_queued: int = setting(8, "notification sounds waiting to play", min=1, max=64)


def chime_wav(rate: int = 24000) -> bytes:
    """The built-in notification sound: two short soft tones (a WAV, generated: no asset file to ship)."""
    frames = bytearray()
    for freq, seconds in ((880.0, 0.12), (0.0, 0.05), (1320.0, 0.18)):
        count = int(rate * seconds)
        for n in range(count):
            fade = min(1.0, n / (rate * 0.01), (count - n) / (rate * 0.02))
            value = 0.3 * fade * math.sin(2 * math.pi * freq * n / rate) if freq else 0.0
            frames += struct.pack("<h", int(value * 32767))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(frames))
    return out.getvalue()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


class NotificationsAgent:
    def __init__(
        self,
        *,
        player: Player | None,
        state_dir: Path,
        settings: NotificationsSettings | None = None,
    ) -> None:
        self.settings = settings or NotificationsSettings()
        self._player = player
        self._path = state_dir / STATE_FILE
        self._writer = StateFileWriter(self._path, "notification indicator")
        doc = read_json_state(self._path) or {}
        self._indicator = doc.get("indicator") is True
        self._observers: Observers[bool] = Observers("notification indicator")
        self._sounds: deque[str] = deque()  # asset URLs ("" = the chime)
        self._wakeup = asyncio.Event()
        self._playback: Playback | None = None
        self._rendering = False
        self._task: asyncio.Task[None] | None = None
        self.sounds_played: list[str] = []  # what was rendered: the asset URL, or "chime" (status, tests)

    # ----- state --------------------------------------------------------------------------------------------

    @property
    def indicator_on(self) -> bool:
        return self._indicator

    def add_observer(self, observer: Callable[[bool], None]) -> Callable[[], None]:
        """``observer(indicator_on)`` after every change (the LED layer); returns its remover."""
        return self._observers.add(observer)

    def context(self) -> dict[str, Any]:
        return context_entry(
            NAMESPACE,
            "IndicatorState",
            {
                "isEnabled": self._indicator or self._rendering or bool(self._sounds),
                "isVisualIndicatorPersisted": self._indicator,
            },
        )

    # ----- DirectiveHandler ---------------------------------------------------------------------------------

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, "SetIndicator"), (NAMESPACE, "ClearIndicator")}

    def blocking(self, directive: Directive) -> bool:
        return False

    async def handle(self, directive: Directive) -> None:
        if directive.name == "ClearIndicator":
            await self.clear()
            return
        payload = directive.payload
        persist, audio = payload.get("persistVisualIndicator"), payload.get("playAudioIndicator")
        if not isinstance(persist, bool) or not isinstance(audio, bool):
            raise DirectiveParseError(
                "SetIndicator needs boolean persistVisualIndicator and playAudioIndicator", directive.raw
            )
        asset = payload.get("asset")
        url = asset.get("url") if isinstance(asset, dict) else None
        if audio and self.settings.play_sound:
            self._queue_sound(url if isinstance(url, str) else "")
        if persist:
            self._set_indicator(True)

    async def cancel(self, directive: Directive) -> None:
        return None

    # ----- indicator ----------------------------------------------------------------------------------------

    async def clear(self) -> None:
        """ClearIndicator (or the user dismissing it): indicator off, sounds dropped."""
        self._sounds.clear()
        playback = self._playback
        if playback is not None:
            await playback.stop()
        self._set_indicator(False)

    def _set_indicator(self, on: bool) -> None:
        if on == self._indicator:
            return
        self._indicator = on
        _LOGGER.info("notification indicator %s", "on" if on else "off")
        self._writer.save({"indicator": on})
        self._observers.notify(on)

    # ----- sounds -------------------------------------------------------------------------------------------

    def _queue_sound(self, url: str) -> None:
        if len(self._sounds) >= self.settings.max_queued:
            _LOGGER.warning("too many notification sounds queued; dropping one")
            return
        self._sounds.append(url)
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._render_all(), name="notification-sounds")

    async def _render_all(self) -> None:
        while self._sounds:
            url = self._sounds.popleft()
            self._rendering = True
            try:
                await self._render(url)
            finally:
                self._rendering = False
                self._playback = None

    async def _render(self, url: str) -> None:
        if self._player is None:
            return
        if url.startswith(("http://", "https://")) and await self._play(Media.from_url(url), url):
            return
        if url:
            _LOGGER.info("notification asset unavailable; playing the built-in chime")
        await self._play(Media.stream(_chunks(chime_wav()), mime="audio/wav"), "chime")

    async def _play(self, media: Media, label: str) -> bool:
        """Play ``media`` to its end; False when it could not start (so the caller falls back)."""
        assert self._player is not None
        playback = self._player.play(media)
        self._playback = playback
        try:
            async with asyncio.timeout(self.settings.sound_timeout_s):
                await playback.started()
        except TimeoutError:
            await playback.stop()
            return False
        except PlaybackError as exc:
            _LOGGER.warning("notification sound %s failed: %s", label[:80], exc)
            return False
        self.sounds_played = [*self.sounds_played[-15:], label]
        outcome = await playback.finished()
        return outcome is not PlaybackOutcome.FAILED

    async def close(self) -> None:
        self._sounds.clear()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        if self._playback is not None:
            await self._playback.stop()
        await self._writer.flush()


__all__ = ["NotificationsAgent", "NotificationsSettings", "chime_wav"]
