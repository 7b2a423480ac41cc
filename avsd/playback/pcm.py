"""The libvlc-free backends: miniaudio decodes on a worker thread, the PCM goes to PortAudio (``pcm``) or to one WAV
file per item (``wav``). Both share :class:`DecodingPlayer`; only the :class:`~avsd.playback.outputs.PcmOutput`
differs.

Per item: a task pumps the attachment into a bounded :class:`StreamBuffer` on the loop, a thread decodes from it,
scales by the volume and writes to the output, reporting back through ``call_soon_threadsafe``. A new ``play()``
first stops and awaits the previous item, so one output never has two writers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from avsd.errors import PlaybackError
from avsd.playback.base import Media, PlaybackOutcome
from avsd.playback.decode import DecodeAborted, PcmFormat, decode_pcm, open_source, scale_s16
from avsd.playback.item import ItemPlayer, PlaybackItem
from avsd.playback.outputs import MemoryOutput, PcmOutput, PyAudioOutput, WavFileOutput

log = logging.getLogger(__name__)


class DecodingItem(PlaybackItem):
    def __init__(self, player: DecodingPlayer, media: Media, offset_ms: int) -> None:
        super().__init__(asyncio.get_running_loop(), player.label, media, offset_ms)
        self.backend = player.name
        self._player = player
        self._running = threading.Event()  # cleared while paused
        self._running.set()

    async def _start(self) -> None:
        threading.Thread(target=self._work, name=self.name, daemon=True).start()

    async def _stop(self) -> None:
        if self.buffer is not None:
            self.buffer.abort()
        self._running.set()

    async def _pause(self) -> None:
        self._running.clear()

    async def _resume(self) -> None:
        self._running.set()

    # -- worker thread --------------------------------------------------------------------------------------
    def _work(self) -> None:
        output = self._player.output
        fmt = output.fmt
        frames = 0
        begun = False
        outcome, error = PlaybackOutcome.FINISHED, None
        try:
            source = open_source(self.media, self.buffer, ca_file=self._player.ca_file)
            for pcm in decode_pcm(self.media, source, fmt, skip_ms=self.start_offset_ms):
                self._running.wait()
                if self.stop_requested:
                    break
                if not begun:
                    self.post_path(output.begin(self.name))
                    begun = True
                output.write(scale_s16(pcm, self._player.gain))
                if frames == 0:
                    self.post_started(time.perf_counter())
                frames += len(pcm) // fmt.frame_bytes
                self.post_offset(fmt.ms(frames))
        except DecodeAborted:
            pass
        except PlaybackError as exc:
            outcome, error = PlaybackOutcome.FAILED, exc
        except Exception as exc:  # thread boundary: anything else is a backend failure, reported, never lost
            log.exception("%s: decoder thread failed", self.name)
            outcome, error = PlaybackOutcome.FAILED, PlaybackError(f"playback failed: {exc}")
        finally:
            if begun:
                try:
                    output.end(drain=not self.stop_requested)
                except Exception as exc:
                    log.warning("%s: closing the output failed: %s", self.name, exc)
        if outcome is PlaybackOutcome.FINISHED:
            outcome, error = self._judge(frames)
        self.post_done(outcome, error)

    def _judge(self, frames: int) -> tuple[PlaybackOutcome, PlaybackError | None]:
        if self.stop_requested:
            return PlaybackOutcome.STOPPED, None
        if self.buffer is not None and self.buffer.error is not None:
            return PlaybackOutcome.FAILED, PlaybackError(f"audio stream broke off: {self.buffer.error}")
        if frames == 0 and self.start_offset_ms == 0:
            return PlaybackOutcome.FAILED, PlaybackError(
                f"no audio could be decoded from {self.media.describe()}"
            )
        return PlaybackOutcome.FINISHED, None


class DecodingPlayer(ItemPlayer[DecodingItem]):
    """A :class:`~avsd.playback.base.Player` that decodes with miniaudio into a :class:`PcmOutput`."""

    name = "pcm"

    def __init__(
        self, output: PcmOutput, *, label: str = "speech", volume: int = 100, ca_file: str = ""
    ) -> None:
        super().__init__(label, volume)
        self.output = output
        self.ca_file = ca_file  # extra CA for https URLs (the emulator's media route)

    def _new_item(self, media: Media, offset_ms: int) -> DecodingItem:
        return DecodingItem(self, media, offset_ms)

    async def close(self) -> None:
        if await self._stop_items():
            await asyncio.to_thread(self.output.close)


class PcmPlayer(DecodingPlayer):
    """Fallback without libvlc: PortAudio output (``device``: index or name part; empty = default)."""

    name = "pcm"

    def __init__(
        self, device: str = "", *, label: str = "speech", fmt: PcmFormat | None = None, ca_file: str = ""
    ) -> None:
        super().__init__(PyAudioOutput(device, fmt), label=label, ca_file=ca_file)


class WavSinkPlayer(DecodingPlayer):
    """Writes what it plays to ``<directory>/<label>-<n>.wav`` (the item's ``path``), as fast as it decodes or,
    with ``realtime``, at the pace a speaker would play it."""

    name = "wav"

    def __init__(
        self,
        directory: Path,
        *,
        label: str = "speech",
        fmt: PcmFormat | None = None,
        realtime: bool = False,
        ca_file: str = "",
    ) -> None:
        super().__init__(WavFileOutput(directory, fmt, realtime=realtime), label=label, ca_file=ca_file)


class CapturePlayer(DecodingPlayer):
    """Decodes what it is asked to play into memory (:attr:`captured`) instead of a speaker: the "player" of a
    headless session (library, ``ask``, virtual device, a phone call), which hands the reply on as audio."""

    name = "capture"

    def __init__(self, *, label: str = "speech", fmt: PcmFormat | None = None) -> None:
        self._memory = MemoryOutput(fmt)
        super().__init__(self._memory, label=label)

    @property
    def captured(self) -> list[tuple[str, bytes]]:
        """(item name, PCM at :attr:`fmt`) of every finished item, oldest first."""
        return self._memory.items

    @property
    def fmt(self) -> PcmFormat:
        return self._memory.fmt
