"""The libvlc backend: one VLC instance and one media player per :class:`VlcPlayer`, reused for every item.

Input. STREAM media (a Speak attachment still arriving) goes through ``libvlc_media_new_callbacks``: VLC's read
callback runs on VLC's input thread and blocks in :meth:`StreamBuffer.read` for the next chunk; ``stop``/``close``
abort the buffer first, because ``libvlc_media_player_stop`` waits for that thread. The callbacks are created once
per player; the ``opaque`` pointer carries the item id so a late read never sees another item's bytes. URL and
FILE media go straight to VLC (http(s), playlists, ``file://``).

Output, and where ``first_audio_time`` comes from (the choice):

- Default (no ``--aout`` in ``vlc_options``): libvlc audio callbacks (``audio_set_callbacks``, VLC's amem).
  VLC decodes, resamples and applies its volume, then hands S16 blocks to our callback on its decoder thread;
  we write them to a :class:`PcmOutput` (PortAudio on ``output_device``, or a WAV file in tests). The callback
  knows the moment the first block was accepted by the device, so ``first_audio_time`` is a real timestamp, not
  VLC's schedule. It also makes the start latency independent of VLC's input caching (amem gets blocks ~1 s
  ahead of their pts and we play them at once).
- ``--aout=...`` in ``vlc_options`` (e.g. ``--aout=afile --audiofile-file=x.wav`` in tests, or ``--aout=alsa``):
  VLC plays through its own output. libvlc 3 reports no "first sample out" event there, so ``first_audio_time``
  is estimated from the first ``MediaPlayerTimeChanged`` event: ``now - new_time`` (resolution ~ 100-300 ms).

VLC events arrive on libvlc's event thread and reach the loop only through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from pathlib import Path
from typing import Any

from avsd.errors import PlaybackError
from avsd.playback.base import Media, MediaKind, PlaybackOutcome, PlaybackSettings
from avsd.playback.decode import PcmFormat, scale_s16
from avsd.playback.item import ItemPlayer, PlaybackItem
from avsd.playback.outputs import PcmOutput, PyAudioOutput

log = logging.getLogger(__name__)

INSTALL_HINT = "sudo apt install vlc-plugin-base libvlc5"
BASE_OPTIONS = ("--no-video", "--quiet", "--no-xlib")
DRAIN_TIMEOUT_S = 2.0


class VlcUnavailableError(PlaybackError):
    """libvlc (or python-vlc) cannot be loaded."""

    code = "playback-vlc-missing"


def _load_vlc() -> Any:
    try:
        import vlc
    except (ImportError, OSError) as exc:  # python-vlc raises OSError when libvlc.so is missing
        raise VlcUnavailableError(f"libvlc cannot be loaded ({exc}); install it: {INSTALL_HINT}") from exc
    return vlc


class VlcItem(PlaybackItem):
    backend = "vlc"

    def __init__(self, player: VlcPlayer, media: Media, offset_ms: int) -> None:
        super().__init__(asyncio.get_running_loop(), player.label, media, offset_ms)
        self._player = player
        # Written by VLC's decoder thread only (audio callbacks mode).
        self.frames = 0
        self.begun = False
        self.ended = False
        self.drained = False  # VLC's drain callback: the decoder has handed over its last block
        self.end_result: tuple[PlaybackOutcome, PlaybackError | None] | None = None  # EndReached seen
        # Cleared while paused. libvlc's pause stops its clock and input, but blocks already decoded still reach
        # the audio callback: they are held here (not played, and VLC's thread is not blocked, or the blocks after
        # them would come late and VLC would drop them) and go out first on resume.
        self.running = threading.Event()
        self.running.set()
        self.held: list[bytes] = []  # guarded by the player's _out_lock

    async def _start(self) -> None:
        try:
            await asyncio.to_thread(self._player.start_item, self)
        except PlaybackError as exc:
            self.mark_done(PlaybackOutcome.FAILED, exc)

    async def _stop(self) -> None:
        if self.buffer is not None:
            self.buffer.abort()  # unblocks VLC's read callback, or libvlc's stop would wait forever
        self.running.set()
        await asyncio.to_thread(self._player.stop_item, self)
        # libvlc sends no Stopped event when stop() comes before the input started, so settle here too.
        self.mark_done(PlaybackOutcome.STOPPED)

    async def _pause(self) -> None:
        self.running.clear()
        await asyncio.to_thread(self._player.set_pause, self, True)

    async def _resume(self) -> None:
        await asyncio.to_thread(self._player.resume_item, self)


class VlcPlayer(ItemPlayer["VlcItem"]):
    """A :class:`~avsd.playback.base.Player` on libvlc. ``output`` replaces the PortAudio output in the audio
    callbacks mode (tests pass a WAV output)."""

    name = "vlc"

    def __init__(
        self,
        settings: PlaybackSettings | None = None,
        *,
        label: str = "speech",
        output: PcmOutput | None = None,
        fmt: PcmFormat | None = None,
    ) -> None:
        settings = settings or PlaybackSettings()
        self._vlc = vlc = _load_vlc()
        super().__init__(label)
        self.native_output = any(opt.startswith("--aout") for opt in settings.vlc_options)
        options = list(BASE_OPTIONS) + list(settings.vlc_options)
        if self.native_output and settings.output_device:
            options.append(f"--alsa-audio-device={settings.output_device}")
        if settings.ca_file:
            # VLC's TLS (GnuTLS) takes extra trust anchors as a directory; the emulator's certificate directory.
            options.append(f"--gnutls-dir-trust={Path(settings.ca_file).parent}")
        self._instance = vlc.Instance(options)
        if self._instance is None:
            raise VlcUnavailableError(
                f"libvlc refused to start with options {options}; install: {INSTALL_HINT}"
            )
        self._mp = self._instance.media_player_new()
        self._lock = threading.Lock()  # guards _active and _items (VLC threads read them)
        self._out_lock = threading.Lock()  # one writer at a time on the output; end() never races write()
        self._active: VlcItem | None = None
        self._items: dict[int, VlcItem] = {}
        self.output: PcmOutput | None = None
        # ctypes callbacks must outlive every call libvlc makes to them: they live as long as the player.
        self._read_cb = vlc.CallbackDecorators.MediaReadCb(self._on_read)
        if not self.native_output:
            self.output = output or PyAudioOutput(settings.output_device, fmt or PcmFormat(48000, 2))
            self._play_cb = vlc.CallbackDecorators.AudioPlayCb(self._on_audio)
            self._drain_cb = vlc.CallbackDecorators.AudioDrainCb(self._on_drain)
            self._mp.audio_set_callbacks(self._play_cb, None, None, None, self._drain_cb, None)
            self._mp.audio_set_format("S16N", self.output.fmt.rate, self.output.fmt.channels)
        events = self._mp.event_manager()
        for name in (
            "MediaPlayerEndReached",
            "MediaPlayerEncounteredError",
            "MediaPlayerStopped",
            "MediaPlayerTimeChanged",
        ):
            events.event_attach(getattr(vlc.EventType, name), self._on_vlc_event, name)
        log.debug(
            "%s: libvlc %s, output %s",
            label,
            vlc.libvlc_get_version().decode(),
            "vlc" if self.native_output else "audio callbacks",
        )

    # -- Player ---------------------------------------------------------------------------------------------
    def _new_item(self, media: Media, offset_ms: int) -> VlcItem:
        return VlcItem(self, media, offset_ms)

    def set_volume(self, volume: int) -> None:
        super().set_volume(volume)
        if self.native_output:
            self._mp.audio_set_volume(volume)

    async def close(self) -> None:
        if await self._stop_items():
            await asyncio.to_thread(self._release)

    def _release(self) -> None:
        self._mp.stop()
        self._mp.release()
        self._instance.release()
        if self.output is not None:
            self.output.close()

    def _reapply_volume(self) -> None:
        # On the loop (native output): the audio output exists now, so the volume sticks.
        if not self._closed:
            self._mp.audio_set_volume(self._volume)

    # -- worker thread (asyncio.to_thread) ------------------------------------------------------------------
    def start_item(self, item: VlcItem) -> None:
        if item.media.kind is MediaKind.STREAM:
            media = self._instance.media_new_callbacks(
                None, self._read_cb, None, None, ctypes.c_void_p(item.id)
            )
        elif item.media.kind is MediaKind.URL and item.media.url:
            media = self._instance.media_new(item.media.url)
        elif item.media.kind is MediaKind.FILE and item.media.url:
            media = self._instance.media_new_path(item.media.url)
        else:
            raise PlaybackError(f"cannot play {item.media.describe()}")
        if media is None:
            raise PlaybackError(f"libvlc cannot open {item.media.describe()}")
        if item.media.kind is MediaKind.STREAM:
            # VLC treats a callback stream it cannot pace as live and slaves its clock to the arrival rate;
            # a reply that arrives faster than real time then ends early (EOF while ~half the audio was still
            # queued got dropped: 3 s of a 6.9 s reply). An attachment is a file arriving, not a live feed.
            media.add_option(":clock-synchro=0")
        if item.start_offset_ms:
            media.add_option(f":start-time={item.start_offset_ms / 1000:.3f}")
        # After EndReached libvlc still sends Stopped for the ended input; stopping here, while the previous
        # (already settled) item is active, keeps that late event away from the new item.
        self._mp.stop()
        with self._lock:
            self._items = {item.id: item}
            self._active = item
        self._mp.set_media(media)
        media.release()
        if self._mp.play() != 0:
            raise PlaybackError(f"libvlc cannot play {item.media.describe()}")
        if self.native_output:
            # libvlc 3 forgets a volume set before the audio output exists; it is set again at first audio.
            self._mp.audio_set_volume(self._volume)

    def stop_item(self, item: VlcItem) -> None:
        with self._lock:
            if self._active is not item:
                return
        self._mp.stop()
        with self._lock:
            self._active = None

    def resume_item(self, item: VlcItem) -> None:
        """Play what was held back at the pause, then let VLC go on (worker thread: the output may block)."""
        with self._out_lock:
            held, item.held = item.held, []
            output = self.output
            if output is not None and item.begun and not item.ended:
                for pcm in held:
                    output.write(scale_s16(pcm, self.gain))
                    item.frames += len(pcm) // output.fmt.frame_bytes
            item.running.set()
        if output is not None and held:
            item.post_offset(output.fmt.ms(item.frames))
        self.set_pause(item, False)

    def set_pause(self, item: VlcItem, paused: bool) -> None:
        with self._lock:
            if self._active is not item:
                return
        self._mp.set_pause(1 if paused else 0)

    # -- libvlc threads: never raise (ctypes would only print it), reach the loop via call_soon_threadsafe -------
    def _on_read(self, opaque: int | None, buf: Any, length: int) -> int:
        try:
            with self._lock:
                item = self._items.get(opaque or 0)
            if item is None or item.buffer is None:
                return -1
            data = item.buffer.read(length)
            if data is None:
                return -1  # aborted: lets libvlc's stop() return
            ctypes.memmove(buf, data, len(data))
            return len(data)
        except Exception:
            log.exception("%s: VLC read callback failed", self.label)
            return -1

    def _on_audio(self, _data: Any, samples: Any, count: int, _pts: int) -> None:
        try:
            with self._lock:
                item = self._active
            output = self.output
            if item is None or output is None or item.stop_requested or count <= 0:
                return
            pcm = ctypes.string_at(samples, count * output.fmt.frame_bytes)
            with self._out_lock:
                if item.ended or item.stop_requested:
                    return
                if not item.running.is_set():
                    item.held.append(pcm)  # decoded before the pause took hold: played on resume
                    return
                if not item.begun:
                    try:
                        path = output.begin(item.name)
                    except PlaybackError as exc:
                        # No output (e.g. no sound card): fail the item once; VLC's later blocks are ignored
                        # instead of each logging the same traceback.
                        item.ended = True
                        item.post_done(PlaybackOutcome.FAILED, exc)
                        log.warning("%s: %s", item.name, exc)
                        return
                    item.begun = True
                    item.post_path(path)
                output.write(scale_s16(pcm, self.gain))  # blocks on a device: paces VLC's decoder
            if item.frames == 0:
                item.post_started(time.perf_counter())
            item.frames += count
            item.post_offset(output.fmt.ms(item.frames))
        except Exception:
            log.exception("%s: VLC audio callback failed", self.label)

    def _on_vlc_event(self, event: Any, name: str) -> None:
        try:
            with self._lock:
                item = self._active
            if item is None:
                return
            if name == "MediaPlayerTimeChanged":
                if self.native_output:
                    new_time = int(event.u.new_time)
                    if new_time > 0 and item.frames == 0:
                        item.frames = 1  # some audio was played
                        item._post(self._reapply_volume)
                    if new_time > 0:
                        item.post_started(time.perf_counter() - new_time / 1000)
                        item.post_offset(max(0, new_time - item.start_offset_ms))
                return
            log.debug("%s: VLC event %s", item.name, name)
            outcome, error = self._judge(item, name)
            with self._out_lock:
                if name == "MediaPlayerEndReached" and item.begun and not item.drained and not self.native_output:
                    # EndReached can overtake the decoder's last blocks (they are still on their way to the
                    # audio callback, e.g. after a pause); the drain callback settles the item then.
                    item.end_result = (outcome, error)
                    item._post(self._drain_deadline, item, DRAIN_TIMEOUT_S)
                    return
            self._settle(item, outcome, error)
        except Exception:
            log.exception("%s: VLC event callback failed", self.label)

    def _on_drain(self, _data: Any) -> None:
        try:
            with self._lock:
                item = self._active
            if item is None:
                return
            with self._out_lock:
                item.drained = True
                result = item.end_result
            if result is not None:
                self._settle(item, *result)
        except Exception:
            log.exception("%s: VLC drain callback failed", self.label)

    def _drain_deadline(self, item: VlcItem, delay: float) -> None:
        """On the loop: settle an ended item whose drain never came (libvlc "may" call drain, not must)."""

        def check() -> None:
            if item.done or item.end_result is None:
                return
            if not item.running.is_set():  # paused: the tail is held until resume; wait
                self._drain_deadline(item, delay)
                return
            log.debug("%s: no drain from VLC; ending", item.name)
            self._settle(item, *item.end_result)

        self._loop_call_later(delay, check)

    def _loop_call_later(self, delay: float, fn: Any) -> None:
        asyncio.get_running_loop().call_later(delay, fn)

    def _settle(self, item: VlcItem, outcome: PlaybackOutcome, error: PlaybackError | None) -> None:
        """Any thread: close the item's output (once) and report the outcome."""
        with self._out_lock:
            if item.ended:
                return
            item.ended = True
            if item.begun and self.output is not None:
                self.output.end(drain=outcome is PlaybackOutcome.FINISHED)
        item.post_done(outcome, error)

    def _judge(self, item: VlcItem, name: str) -> tuple[PlaybackOutcome, PlaybackError | None]:
        if name == "MediaPlayerStopped" or item.stop_requested:
            return PlaybackOutcome.STOPPED, None
        if name == "MediaPlayerEncounteredError":
            return PlaybackOutcome.FAILED, PlaybackError(f"VLC could not play {item.media.describe()}")
        if item.buffer is not None and item.buffer.error is not None:
            return PlaybackOutcome.FAILED, PlaybackError(f"audio stream broke off: {item.buffer.error}")
        if item.frames == 0:
            return PlaybackOutcome.FAILED, PlaybackError(f"VLC decoded no audio from {item.media.describe()}")
        return PlaybackOutcome.FINISHED, None
